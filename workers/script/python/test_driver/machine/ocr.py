# SPDX-License-Identifier: MIT
"""OCR of screenshots with tesseract (+ ImageMagick for the processed
variants), the reference's pipeline and error texts. Without tesseract on
PATH every OCR call raises MachineError, as in the reference."""

import os
import shutil
import subprocess
from pathlib import Path

from test_driver.errors import MachineError


def _run_tesseract(image: Path) -> str:
    proc = subprocess.run(
        ["tesseract", str(image), "-", "--oem", "2", "-c", "debug_file=/dev/null", "--psm", "11"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if proc.returncode != 0:
        raise MachineError(f"OCR failed with exit code {proc.returncode}")
    return proc.stdout.decode("utf-8")


def _preprocess(screenshot: Path, negate: bool) -> Path:
    if shutil.which("magick") is None:
        raise MachineError("OCR requested but `magick` is not available")
    args = ["-filter", "Catrom", "-density", "72", "-resample", "300", "-contrast", "-normalize",
            "-despeckle", "-type", "grayscale", "-sharpen", "1", "-posterize", "3"]
    if negate:
        args.append("-negate")
        out = screenshot.with_name(f"{screenshot.stem}.negative.png")
    else:
        out = screenshot.with_name(f"{screenshot.stem}.positive.png")
    args += ["-gamma", "100", "-blur", "1x65535"]
    proc = subprocess.run(["magick", "convert", *args, str(screenshot), str(out)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise MachineError(
            f"Image processing failed with exit code {proc.returncode}, "
            f"stdout: {proc.stdout.decode()}, stderr: {proc.stderr.decode()}"
        )
    return out


def perform_ocr_variants_on_screenshot(screenshot_path: Path, variants: bool = True) -> list[str]:
    if shutil.which("tesseract") is None:
        raise MachineError("OCR requested but `tesseract` is not available")
    from concurrent.futures import ThreadPoolExecutor

    nix_cores = os.environ.get("NIX_BUILD_CORES")
    cores = int(nix_cores) if nix_cores else (os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, cores // 4)) as pool:
        jobs = [pool.submit(_run_tesseract, screenshot_path)]
        if variants:
            for negate in (False, True):
                jobs.append(pool.submit(lambda n=negate: _run_tesseract(_preprocess(screenshot_path, n))))
        return [job.result() for job in jobs]


def perform_ocr_on_screenshot(screenshot_path: Path) -> str:
    return perform_ocr_variants_on_screenshot(screenshot_path, False)[0]
