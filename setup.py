"""What pyproject.toml cannot say: the wheel records the commit it was built from (`tinyml --version`)."""

import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithCommit(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install asks git itself (tinyml.util)
            return
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    timeout=10, cwd=Path(__file__).parent).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit = ""
        (Path(self.build_lib) / "tinyml" / "COMMIT").write_text((commit or "unknown") + "\n")


setup(cmdclass={"build_py": BuildPyWithCommit})
