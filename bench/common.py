"""What every bench line carries: the machine and the versions."""

import os
import platform

from r1_distill.manifest import package_versions


def machine() -> dict:
    return {"machine": platform.platform(), "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "versions": package_versions()}
