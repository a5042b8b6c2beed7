"""README.md's "Using it" block runs as typed, from a fresh folder with the venv beside it.

Each line runs as a shell user would meet it: `. .venv/bin/activate` is what puts
`publisher` on the PATH (the test removes it first), `cd` changes the folder for the
lines after it, a line ending in `&` runs in the background, the servers (`schedule
run`, `serve`) run until they are ready and then get Ctrl-C (SIGINT), and `users add`
answers its password prompt on a real pseudo-terminal. Two things differ from a person
at a keyboard, both to share the machine with other tests: the mail sink and `serve`
listen on free ports instead of 1025 and 8000 (PUBLISHER_MAIL__SMTP_URL points at the
sink), and `make install` runs as `make -n install` in the checkout (the venv exists).
"""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PASSWORD = "readme-password-123"


def using_it_block() -> list[str]:
    """Return the command lines of README.md's "Using it" shell block."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Using it", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "README.md: no ```sh block under ## Using it"
    return [line for line in match[1].splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(ready: object, what: str, timeout: float = 180) -> None:
    """Poll a zero-argument callable until it returns true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not ready after {timeout} s")


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def stop(process: subprocess.Popen[str], what: str) -> str:
    """Press Ctrl-C on a server and return its output; it must exit cleanly."""
    process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"{what}: still running 120 s after Ctrl-C:\n{output}") from None
    # 130 is the conventional status after Ctrl-C (click prints "aborted").
    assert process.returncode in (0, 130), f"{what}: exit {process.returncode}\n{output}"
    return output


def with_password(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run argv on a pseudo-terminal, typing PASSWORD at each prompt; return what it showed."""
    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover - the child becomes the command
        os.chdir(cwd)
        os.execvpe(argv[0], argv, env)  # noqa: S606 - a command line, as a shell would run it
    shown = b""
    typed = 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
        # "Password: " then "Repeat for confirmation: "
        while shown.count(b": ") > typed and typed < 2:
            os.write(master, PASSWORD.encode() + b"\n")
            typed += 1
    os.close(master)
    _, status = os.waitpid(pid, 0)
    text = shown.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, f"{shlex.join(argv)}:\n{text}"
    return text


def test_using_it_runs_as_typed(tmp_path: Path) -> None:
    venv = Path(sys.prefix)
    (tmp_path / ".venv").symlink_to(venv, target_is_directory=True)
    env = dict(os.environ)
    for name in [key for key in env if key.startswith("PUBLISHER_")]:
        del env[name]
    # A fresh shell: no venv active, so only `. .venv/bin/activate` can find `publisher`.
    env["PATH"] = os.pathsep.join(
        entry
        for entry in env.get("PATH", "").split(os.pathsep)
        if entry and Path(entry).resolve() != (venv / "bin").resolve()
    )
    env.pop("VIRTUAL_ENV", None)
    before = shutil.which("publisher", path=env["PATH"])
    assert before is None or Path(before).parent != venv / "bin", before
    sink_port, web_port = free_port(), free_port()
    env["PUBLISHER_MAIL__SMTP_URL"] = f"smtp://127.0.0.1:{sink_port}"
    env["COLUMNS"] = "200"
    cwd = tmp_path
    background: list[subprocess.Popen[str]] = []
    seen: dict[str, str] = {}
    try:
        for line in using_it_block():
            words = shlex.split(line, comments=True)
            command = shlex.join(words)
            if words == ["make", "install"]:
                done = subprocess.run(
                    ["make", "-n", "install"], cwd=ROOT, capture_output=True, text=True
                )
                assert done.returncode == 0, done.stderr
            elif words == [".", ".venv/bin/activate"]:
                dumped = subprocess.run(
                    ["bash", "-c", ". .venv/bin/activate && env -0"],
                    cwd=cwd,
                    env=env,
                    capture_output=True,
                    check=True,
                )
                env = dict(
                    item.split("=", 1) for item in dumped.stdout.decode().split("\0") if "=" in item
                )
                assert shutil.which("publisher", path=env["PATH"]), "activate: no publisher"
            elif words[0] == "cd":
                cwd = cwd / words[1]
                assert cwd.is_dir(), line
            elif words[-1] == "&":
                argv = words[:-1]
                if argv[:2] == ["publisher", "mailsink"]:
                    argv += ["--port", str(sink_port)]
                process = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                background.append(process)
                if argv[:2] == ["publisher", "mailsink"]:
                    # A person types the next line after the sink says it listens.
                    wait_until(lambda: accepts(sink_port), command)
            elif words[:3] == ["publisher", "schedule", "run"]:
                log = cwd / "schedule.log"
                with log.open("w") as out:
                    process = subprocess.Popen(
                        words, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
                    )
                    wait_until(lambda log=log: "digest-tick: next run" in log.read_text(), command)
                    stop(process, command)
                seen[command] = log.read_text()
            elif words[:2] == ["publisher", "serve"]:
                process = subprocess.Popen(
                    [*words, "--port", str(web_port)],
                    cwd=cwd,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                wait_until(lambda: answers(f"http://127.0.0.1:{web_port}/subscribe"), command)
                seen[command] = stop(process, command)
            elif words[:3] == ["publisher", "users", "add"]:
                seen[command] = with_password(words, cwd, env)
            else:
                done = subprocess.run(
                    words, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
                )
                seen[command] = done.stdout + done.stderr
                if words[:2] == ["publisher", "doctor"]:
                    # Exit 1 means "something to fix" (no DKIM, SPF or DMARC for the
                    # example domain); every line must still be a verdict.
                    assert done.returncode in (0, 1), seen[command]
                    assert all(
                        re.match(r"^(ok|warn|FAIL) ", row) or re.match(r"^\d+ problem", row)
                        for row in done.stdout.splitlines()
                    ), done.stdout
                    assert re.search(r"^ok +relay", done.stdout, re.MULTILINE), done.stdout
                else:
                    assert done.returncode == 0, f"{line}\n{seen[command]}"
    finally:
        for process in background:
            if process.poll() is None:
                stop(process, shlex.join(process.args))  # type: ignore[arg-type]

    site = tmp_path / "mysite"
    assert "1 created" in seen["publisher articles add posts/"]
    assert (site / "public" / "feed.xml").is_file()
    assert (site / "preview" / "digest.eml").is_file()
    assert list((site / "outbox").glob("*.eml")), "digest send delivered nothing to the sink"
    assert (
        "added editor@example.org (editor)"
        in seen["publisher users add editor@example.org --role editor"]
    )
    token = seen["publisher tokens create --user editor@example.org --name cms --scope write"]
    assert token.startswith("pub_"), token


def test_init_leaves_an_existing_posts_folder_alone(tmp_path: Path) -> None:
    posts = tmp_path / "site" / "posts"
    posts.mkdir(parents=True)
    (posts / "mine.md").write_text("---\ntitle: Mine\n---\nBody.\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "publisher", "init", str(tmp_path / "site"), "--language", "en"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in posts.iterdir()) == ["mine.md"]
    assert "welcome.md" not in done.stdout


def test_welcome_post_keeps_a_hostile_title_intact(tmp_path: Path) -> None:
    """The title lands in YAML front matter: quotes, a newline and '---' stay text."""
    title = 'Kabar "Baru"\n---\n{title}: #1'
    site = tmp_path / "site"
    env = {**os.environ, "COLUMNS": "200"}
    for args in (
        ["init", str(site), "--title", title, "--language", "en"],
        ["--config", str(site / "publisher.toml"), "articles", "add", str(site / "posts")],
        ["--config", str(site / "publisher.toml"), "articles", "list", "--json"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "publisher", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    [article] = json.loads(done.stdout)
    # Titles are stored with their whitespace collapsed; nothing became front matter.
    assert article["title"] == "Welcome to " + " ".join(title.split())
