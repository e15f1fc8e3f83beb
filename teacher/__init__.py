"""r1_distill.teacher: reach or serve the teacher, sample k traces per prompt, verify and filter them."""
