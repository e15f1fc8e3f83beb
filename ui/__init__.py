"""r1_distill.ui: a Gradio chat app that shows the thinking apart from the answer."""
