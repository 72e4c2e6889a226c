# SPDX-License-Identifier: MIT
"""Entry point vigil-script calls after it embedded CPython: turn the
supervisor's MSG_CONFIG json (docs: team script-config contract) into a
Driver, run the script (or the REPL for --interactive) and return the
verdict (exit_code, message). The C side sends it as MSG_S_RESULT and exits.

Exit codes: 0 pass, 1 test failure of any kind, 78 bad configuration.
A script's own sys.exit(n) with n != 0 becomes 1 (vigil's other exit codes
mean other things to the supervisor); the original code is in the message.
"""

import atexit
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_CONFIG = 78


class ConfigError(Exception):
    pass


def _load_config(config_json: str) -> dict[str, Any]:
    try:
        cfg = json.loads(config_json)
    except ValueError as e:
        raise ConfigError(f"configuration is not JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise ConfigError("configuration is not a JSON object")
    if not isinstance(cfg.get("test_script"), str) and not cfg.get("interactive"):
        raise ConfigError("configuration has no test_script")
    machines = cfg.get("machines", [])
    if not isinstance(machines, list) or not all(isinstance(m, dict) and isinstance(m.get("name"), str)
                                                 for m in machines):
        raise ConfigError("configuration: machines must be a list of objects with a name")
    vlans = cfg.get("vlans", [])
    if not isinstance(vlans, list) or not all(isinstance(v, dict) and "nr" in v for v in vlans):
        raise ConfigError("configuration: vlans must be a list of objects with nr")
    return cfg


def _exit_code(e: SystemExit) -> tuple[int, str | None]:
    code = e.code
    if code is None or code == 0:
        return EXIT_PASS, None
    if isinstance(code, int):
        return EXIT_FAIL, f"the script exited with status {code}"
    # sys.exit("message"): Python prints it and exits 1
    sys.stderr.write(f"{code}\n")
    return EXIT_FAIL, str(code)


def _interact(symbols: dict[str, Any]) -> None:
    import code

    try:
        import readline  # noqa: F401 (line editing and history for input())

        history = os.path.join(os.getcwd(), ".nixos-test-history")
        try:
            readline.read_history_file(history)
        except OSError:
            pass
        atexit.register(lambda: _save_history(readline, history))
    except ImportError:
        pass
    console = code.InteractiveConsole(locals=symbols)
    console.interact(
        banner="vigil interactive test driver: test_script() runs the test script, Ctrl-D leaves.",
        exitmsg="",
    )


def _save_history(readline: Any, path: str) -> None:
    try:
        readline.write_history_file(path)
    except OSError:
        pass


def main(config_json: str) -> tuple[int, str]:
    from test_driver import netfaults
    from test_driver.channel import VigilChannel
    from test_driver.driver import Driver
    from test_driver.logger import (
        CompositeLogger,
        JunitXMLLogger,
        LogLevel,
        QuietTerminalLogger,
        TerminalLogger,
        XMLLogger,
    )

    try:
        cfg = _load_config(config_json)
        tests = ""
        if cfg.get("test_script"):
            try:
                tests = Path(cfg["test_script"]).read_text()
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(f"cannot read the test script {cfg['test_script']}: {e}") from None
    except ConfigError as e:
        sys.stderr.write(f"vigil-script: {e}\n")
        return EXIT_CONFIG, str(e)

    logger = CompositeLogger([QuietTerminalLogger() if cfg.get("quiet") else TerminalLogger()])
    if "LOGFILE" in os.environ:
        logger.add_logger(XMLLogger(os.environ["LOGFILE"]))
    if cfg.get("junit"):
        logger.add_logger(JunitXMLLogger(Path(cfg["junit"])))
    level = {lv.name.lower(): lv for lv in LogLevel}.get(str(cfg.get("log_level", "info")).lower())
    if level is not None:
        logger.set_log_level(level)

    channel = VigilChannel()

    def subtest_hook(name: str, what: str) -> None:
        channel.journal_subtest(name, what)
        channel.event(f"subtest-{what}", name)

    logger.subtest_hooks.append(subtest_hook)

    keep = bool(cfg.get("keep_state", False))
    if not keep:
        logger.info("Machine state will be reset. To keep it, pass --keep-machine-state")

    driver = Driver(
        machines=cfg.get("machines", []),
        vlans=cfg.get("vlans", []),
        tests=tests,
        out_dir=Path(cfg.get("out_dir") or os.getcwd()),
        logger=logger,
        tmp_dir=Path(cfg["tmp_dir"]) if cfg.get("tmp_dir") else None,
        keep_machine_state=keep,
        global_timeout=int(cfg.get("global_timeout", 3600)),
        channel=channel,
        enable_ssh_backdoor=bool(cfg.get("enable_ssh_backdoor", False)),
    )
    netfaults.bind(driver)
    driver.dump_machine_ssh()

    code, message = EXIT_PASS, "test passed"
    try:
        if cfg.get("interactive"):
            _interact(driver.test_symbols())
            message = "interactive session ended"
        else:
            tic = time.time()
            driver.run_tests()
            toc = time.time()
            logger.info(f"test script finished in {(toc - tic):.2f}s")
    except SystemExit as e:
        code, why = _exit_code(e)
        if code != EXIT_PASS:
            message = driver.failure or why or "test failed"
    except BaseException as e:  # noqa: B036 (KeyboardInterrupt too: it is a verdict)
        # The reference lets these escape: Python's normal traceback, status 1.
        traceback.print_exc()
        code, message = EXIT_FAIL, driver.failure or f"{type(e).__name__}: {e}"
    finally:
        logger.close()
        # Run the script's own atexit handlers now: vigil-script leaves with
        # _exit() so that no stuck thread can hold the verdict hostage.
        try:
            atexit._run_exitfuncs()
        except Exception:
            pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    return code, message
