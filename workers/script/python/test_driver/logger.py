# SPDX-License-Identifier: MIT
"""The loggers behind the `log` global (reference §6).

TerminalLogger writes the reference's human log to stderr: plain lines
prefixed `<machine>: `, nested blocks as a bold green header and a
`(finished: <header>, in X.XX seconds)` line, serial lines dim as
`<machine> # <line>`, test errors after a red `!!! `. Like the reference the
nested context managers have no try/finally: when the body raises, the
`(finished: ...)` line is not printed. JunitXMLLogger collects one test case
per subtest and writes the file at close; XMLLogger is the reference's
LOGFILE format. CompositeLogger fans out to all of them; its error() exits
the script with status 1.
"""

import atexit
import os
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from enum import IntEnum
from pathlib import Path
from queue import Empty, Queue
from typing import Any, Callable, cast

# colorama's codes, emitted unconditionally as the reference does.
BRIGHT = "\x1b[1m"
DIM = "\x1b[2m"
GREEN = "\x1b[32m"
RED = "\x1b[31m"
RESET = "\x1b[0m"


class LogLevel(IntEnum):
    DEBUG = 1
    INFO = 2
    WARNING = 3
    ERROR = 4


class AbstractLogger:
    def log(self, message: str, attributes: dict[str, str] = {}) -> None:
        raise NotImplementedError

    @contextmanager
    def subtest(self, name: str, attributes: dict[str, str] = {}) -> Iterator[None]:
        raise NotImplementedError
        yield

    @contextmanager
    def nested(self, message: str, attributes: dict[str, str] = {}) -> Iterator[None]:
        raise NotImplementedError
        yield

    def debug(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def info(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def warning(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def error(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def log_test_error(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def log_test_errors(self, lines: list[str], **kwargs: Any) -> None:
        """vigil's: the lines of one failure (a traceback) as one block. The
        reference logs them one by one; a terminal logger writes the block
        at once, so that a line another process writes to the same stderr
        (vigil's progress lines) cannot land inside it."""
        for line in lines:
            self.log_test_error(line, **kwargs)

    def log_serial(self, message: str, machine: str) -> None:
        raise NotImplementedError

    def print_serial_logs(self, enable: bool) -> None:
        raise NotImplementedError

    def set_log_level(self, level: LogLevel) -> None:
        raise NotImplementedError


def _prefix(message: str, attributes: dict[str, str]) -> str:
    if "machine" in attributes:
        return f"{attributes['machine']}: {message}"
    return message


# A guest's console is untrusted: its escape sequences (SeaBIOS sends ESC c, a
# full terminal reset) must not reach the user's terminal, where they would
# also undo vigil's progress line. Control characters are shown as ^X.
_CONSOLE_CONTROLS = {c: "^" + chr(c + 64) for c in range(32) if c != 9}
_CONSOLE_CONTROLS.update({127: "^?"})
_CONSOLE_CONTROLS.update({c: "?" for c in range(0x80, 0xA0)})


class TerminalLogger(AbstractLogger):
    def __init__(self, stream: Any = None) -> None:
        self._stream = stream
        self._print_serial_logs = True
        self._log_level = LogLevel.INFO
        # Serial followers and start_all() threads print concurrently.
        self._lock = threading.Lock()

    def maybe_prefix(self, message: str, attributes: dict[str, str]) -> str:
        return _prefix(message, attributes)

    def _eprint(self, text: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        with self._lock:
            try:
                stream.write(text + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass

    def log(self, message: str, attributes: dict[str, str] = {}) -> None:
        self._eprint(self.maybe_prefix(message, attributes))

    @contextmanager
    def subtest(self, name: str, attributes: dict[str, str] = {}) -> Iterator[None]:
        with self.nested("subtest: " + name, attributes):
            yield

    @contextmanager
    def nested(self, message: str, attributes: dict[str, str] = {}) -> Iterator[None]:
        self._eprint(self.maybe_prefix(BRIGHT + GREEN + message + RESET, attributes))
        tic = time.time()
        yield
        toc = time.time()
        self.log(f"(finished: {message}, in {toc - tic:.2f} seconds)", attributes)

    def debug(self, *args: Any, **kwargs: Any) -> None:
        if self._log_level <= LogLevel.DEBUG:
            self._eprint(DIM + self.maybe_prefix(args[0], kwargs) + RESET)

    def info(self, *args: Any, **kwargs: Any) -> None:
        if self._log_level <= LogLevel.INFO:
            self.log(*args, **kwargs)

    def warning(self, *args: Any, **kwargs: Any) -> None:
        if self._log_level <= LogLevel.WARNING:
            self.log(*args, **kwargs)

    def error(self, *args: Any, **kwargs: Any) -> None:
        self.log(*args, **kwargs)

    def print_serial_logs(self, enable: bool) -> None:
        self._print_serial_logs = enable

    def set_log_level(self, level: LogLevel) -> None:
        self._log_level = level

    def log_serial(self, message: str, machine: str) -> None:
        if self._print_serial_logs:
            self._eprint(DIM + f"{machine} # {message.translate(_CONSOLE_CONTROLS)}" + RESET)

    def log_test_error(self, *args: Any, **kwargs: Any) -> None:
        # The reference routes this through warning() (so it never exits) and
        # hence through the log level too.
        self.warning(f"{RED}!!! {RESET}{args[0]}", *args[1:], **kwargs)

    def log_test_errors(self, lines: list[str], **kwargs: Any) -> None:
        if lines and self._log_level <= LogLevel.WARNING:
            self._eprint("\n".join(self.maybe_prefix(f"{RED}!!! {RESET}{line}", kwargs) for line in lines))


class QuietTerminalLogger(TerminalLogger):
    """`vigil run --quiet`: the script's log and the consoles stay off
    stderr (vigil's progress line says where the run is); warnings, errors
    and the failure's traceback still show."""

    def log(self, message: str, attributes: dict[str, str] = {}) -> None:
        pass

    @contextmanager
    def nested(self, message: str, attributes: dict[str, str] = {}) -> Iterator[None]:
        yield

    def log_serial(self, message: str, machine: str) -> None:
        pass

    def warning(self, *args: Any, **kwargs: Any) -> None:
        if self._log_level <= LogLevel.WARNING:
            self._eprint(self.maybe_prefix(args[0], kwargs))

    def error(self, *args: Any, **kwargs: Any) -> None:
        self._eprint(self.maybe_prefix(args[0], kwargs))


class JunitXMLLogger(AbstractLogger):
    """A `main` <testcase> (what was logged outside any subtest, as in the
    reference's golden file) and one per distinct subtest name (re-entered
    names accumulate). vigil adds `classname` (JUnit consumers key on it) and
    a failure message naming the first error instead of "test case failed".
    Written at close() (registered with atexit, and called explicitly by
    vigil's runner)."""

    SUITE = "NixOS integration test"

    class TestCaseState:
        def __init__(self) -> None:
            self.stdout = ""
            self.stderr = ""
            self.failure = False
            self.first_error = ""
            self.total_secs = 0.0
            self.nested_secs = 0.0

    def __init__(self, outfile: Path) -> None:
        self.outfile = Path(outfile)
        self.suite = JunitXMLLogger.TestCaseState()
        self.tests: dict[str, JunitXMLLogger.TestCaseState] = {}
        self.stack: list[str] = []
        self._print_serial_logs = True
        self._log_level = LogLevel.INFO
        self._start = time.monotonic()
        self._closed = False
        self._lock = threading.Lock()
        atexit.register(self.close)

    def _out(self, text: str) -> None:
        with self._lock:
            # outside every subtest, a line belongs to `main`
            tc = self.tests[self.stack[-1]] if self.stack else self.suite
            tc.stdout += text + os.linesep

    def log(self, message: str, attributes: dict[str, str] = {}) -> None:
        self._out(message)

    @contextmanager
    def subtest(self, name: str, attributes: dict[str, str] = {}) -> Iterator[None]:
        self.tests.setdefault(name, JunitXMLLogger.TestCaseState())
        self.stack.append(name)
        tic = time.monotonic()
        yield
        spent = time.monotonic() - tic
        self.tests[name].total_secs += spent
        self.stack.pop()
        if self.stack:
            self.tests[self.stack[-1]].nested_secs += spent

    @contextmanager
    def nested(self, message: str, attributes: dict[str, str] = {}) -> Iterator[None]:
        self.log(message)
        yield

    def debug(self, *args: Any, **kwargs: Any) -> None:
        if self._log_level <= LogLevel.DEBUG:
            self._out(args[0])

    def info(self, *args: Any, **kwargs: Any) -> None:
        if self._log_level <= LogLevel.INFO:
            self._out(args[0])

    def warning(self, *args: Any, **kwargs: Any) -> None:
        if self._log_level <= LogLevel.WARNING:
            self._out(args[0])

    def error(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            tc = self.tests[self.stack[-1]] if self.stack else self.suite
            tc.stderr += args[0] + os.linesep
            tc.failure = True
            if not tc.first_error and str(args[0]).strip():
                tc.first_error = str(args[0]).strip()

    def log_test_error(self, *args: Any, **kwargs: Any) -> None:
        self.error(*args, **kwargs)

    def log_serial(self, message: str, machine: str) -> None:
        if self._print_serial_logs:
            self._out(f"{machine} # {message}")

    def print_serial_logs(self, enable: bool) -> None:
        self._print_serial_logs = enable

    def set_log_level(self, level: LogLevel) -> None:
        self._log_level = level

    def to_xml(self) -> str:
        from xml.dom import minidom
        from xml.etree import ElementTree as ET

        main = self.suite
        main.total_secs = time.monotonic() - self._start
        main.nested_secs = sum(tc.total_secs for name, tc in self.tests.items() if name != "main")
        tests = {"main": main, **{name: tc for name, tc in self.tests.items() if name != "main"}}
        if "main" in self.tests:  # a subtest named "main" shares the case
            other = self.tests["main"]
            main.stdout += other.stdout
            main.stderr += other.stderr
            main.failure = main.failure or other.failure
            main.first_error = main.first_error or other.first_error
        failures = sum(1 for tc in tests.values() if tc.failure)
        total = sum(max(0.0, tc.total_secs - tc.nested_secs) for tc in tests.values())
        counts = {"tests": str(len(tests)), "failures": str(failures), "errors": "0", "skipped": "0",
                  "disabled": "0", "time": f"{total:.3f}"}
        root = ET.Element("testsuites", counts)
        suite = ET.SubElement(root, "testsuite", {"name": self.SUITE, **counts})
        for name, tc in tests.items():
            case = ET.SubElement(suite, "testcase", {"classname": self.SUITE, "name": name,
                                                     "time": f"{max(0.0, tc.total_secs - tc.nested_secs):.3f}"})
            if tc.failure:
                ET.SubElement(case, "failure", {"type": "failure", "message": _xml_safe(tc.first_error or "test case failed")})
            if tc.stdout:
                ET.SubElement(case, "system-out").text = _xml_safe(tc.stdout)
            if tc.stderr:
                ET.SubElement(case, "system-err").text = _xml_safe(tc.stderr)
        raw = ET.tostring(root, encoding="unicode")
        return minidom.parseString(raw).toprettyxml(indent="\t", encoding=None)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.outfile.parent.mkdir(parents=True, exist_ok=True)
            self.outfile.write_text(self.to_xml())
        except OSError as e:
            sys.stderr.write(f"cannot write JUnit file {self.outfile}: {e}\n")


def _xml_safe(text: str) -> str:
    # XML 1.0 cannot carry most control characters (guests print escape codes).
    return "".join(ch for ch in text if ch in "\t\n\r" or unicodedata.category(ch) != "Cc")


class XMLLogger(AbstractLogger):
    """The reference's LOGFILE format: <logfile> with <nest><head> blocks and
    <line> entries; serial lines are queued and flushed at the next log call."""

    def __init__(self, outfile: str) -> None:
        # imported here: xml.sax pulls in urllib and email (~35 ms of start-up)
        from xml.sax.saxutils import XMLGenerator
        from xml.sax.xmlreader import AttributesImpl

        self._attrs = AttributesImpl
        self.logfile_handle = open(outfile, "wb")
        # XMLGenerator takes binary streams too (it wraps them); typeshed says text only.
        self.xml = XMLGenerator(cast(Any, self.logfile_handle), encoding="utf-8")
        self.queue: Queue[dict[str, str]] = Queue()
        self._print_serial_logs = True
        self._log_level = LogLevel.INFO
        self._lock = threading.RLock()
        self.xml.startDocument()
        self.xml.startElement("logfile", attrs=self._attrs({}))
        atexit.register(self.close)

    def close(self) -> None:
        with self._lock:
            if self.logfile_handle.closed:
                return
            self.drain_log_queue()
            self.xml.endElement("logfile")
            self.xml.endDocument()
            self.logfile_handle.close()

    def sanitise(self, message: str) -> str:
        return "".join(ch for ch in message if unicodedata.category(ch)[0] != "C")

    def log_line(self, message: str, attributes: dict[str, str]) -> None:
        if self.logfile_handle.closed:
            return
        self.xml.startElement("line", attrs=self._attrs(attributes))
        self.xml.characters(message)
        self.xml.endElement("line")

    def debug(self, *args: Any, **kwargs: Any) -> None:
        if self._log_level <= LogLevel.DEBUG:
            self.log(*args, **kwargs)

    def info(self, *args: Any, **kwargs: Any) -> None:
        if self._log_level <= LogLevel.INFO:
            self.log(*args, **kwargs)

    def warning(self, *args: Any, **kwargs: Any) -> None:
        if self._log_level <= LogLevel.WARNING:
            self.log(*args, **kwargs)

    def error(self, *args: Any, **kwargs: Any) -> None:
        self.log(*args, **kwargs)

    def log_test_error(self, *args: Any, **kwargs: Any) -> None:
        self.log(*args, **kwargs)

    def log(self, message: str, attributes: dict[str, str] = {}) -> None:
        with self._lock:
            self.drain_log_queue()
            self.log_line(message, attributes)

    def print_serial_logs(self, enable: bool) -> None:
        self._print_serial_logs = enable

    def set_log_level(self, level: LogLevel) -> None:
        self._log_level = level

    def log_serial(self, message: str, machine: str) -> None:
        if self._print_serial_logs:
            self.queue.put({"msg": message, "machine": machine, "type": "serial"})

    def drain_log_queue(self) -> None:
        with self._lock:
            try:
                while True:
                    item = self.queue.get_nowait()
                    msg = self.sanitise(item.pop("msg"))
                    self.log_line(msg, item)
            except Empty:
                pass

    @contextmanager
    def subtest(self, name: str, attributes: dict[str, str] = {}) -> Iterator[None]:
        with self.nested("subtest: " + name, attributes):
            yield

    @contextmanager
    def nested(self, message: str, attributes: dict[str, str] = {}) -> Iterator[None]:
        with self._lock:
            self.xml.startElement("nest", attrs=self._attrs({}))
            self.xml.startElement("head", attrs=self._attrs(attributes))
            self.xml.characters(message)
            self.xml.endElement("head")
            self.drain_log_queue()
        tic = time.time()
        yield
        self.drain_log_queue()
        toc = time.time()
        self.log(f"(finished: {message}, in {toc - tic:.2f} seconds)")
        with self._lock:
            self.xml.endElement("nest")


class CompositeLogger(AbstractLogger):
    def __init__(self, logger_list: list[AbstractLogger]) -> None:
        self.logger_list = logger_list
        # vigil: called with (name, begun) around subtests, for the journal and
        # the supervisor's timeline. Not part of the reference API.
        self.subtest_hooks: list[Callable[[str, str], None]] = []

    def add_logger(self, logger: AbstractLogger) -> None:
        self.logger_list.append(logger)

    def log(self, message: str, attributes: dict[str, str] = {}) -> None:
        for logger in self.logger_list:
            logger.log(message, attributes)

    def _hook(self, name: str, what: str) -> None:
        for hook in self.subtest_hooks:
            try:
                hook(name, what)
            except Exception:
                pass

    @contextmanager
    def subtest(self, name: str, attributes: dict[str, str] = {}) -> Iterator[None]:
        with ExitStack() as stack:
            for logger in self.logger_list:
                stack.enter_context(logger.subtest(name, attributes))
            self._hook(name, "begin")
            try:
                yield
            except BaseException:
                self._hook(name, "failed")
                raise
            self._hook(name, "end")

    @contextmanager
    def nested(self, message: str, attributes: dict[str, str] = {}) -> Iterator[None]:
        with ExitStack() as stack:
            for logger in self.logger_list:
                stack.enter_context(logger.nested(message, attributes))
            yield

    def debug(self, *args: Any, **kwargs: Any) -> None:
        for logger in self.logger_list:
            logger.debug(*args, **kwargs)

    def info(self, *args: Any, **kwargs: Any) -> None:
        for logger in self.logger_list:
            logger.info(*args, **kwargs)

    def warning(self, *args: Any, **kwargs: Any) -> None:
        for logger in self.logger_list:
            logger.warning(*args, **kwargs)

    def log_test_error(self, *args: Any, **kwargs: Any) -> None:
        for logger in self.logger_list:
            logger.log_test_error(*args, **kwargs)

    def log_test_errors(self, lines: list[str], **kwargs: Any) -> None:
        for logger in self.logger_list:
            logger.log_test_errors(lines, **kwargs)

    def error(self, *args: Any, **kwargs: Any) -> None:
        for logger in self.logger_list:
            logger.error(*args, **kwargs)
        sys.exit(1)

    def print_serial_logs(self, enable: bool) -> None:
        for logger in self.logger_list:
            logger.print_serial_logs(enable)

    def log_serial(self, message: str, machine: str) -> None:
        for logger in self.logger_list:
            logger.log_serial(message, machine)

    def set_log_level(self, level: LogLevel) -> None:
        for logger in self.logger_list:
            logger.set_log_level(level)

    def close(self) -> None:
        """vigil: flush file loggers now (the reference relies on atexit)."""
        for logger in self.logger_list:
            close = getattr(logger, "close", None)
            if close is not None:
                close()


# The 2022-2024 drivers had a single `Logger` class; nixpkgs' typing prelude of
# that era (test-script-prepend.py) imports it to annotate `log`.
Logger = AbstractLogger
