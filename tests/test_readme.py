"""The README's API tour runs as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)              # the blocks write files (a sweep's store)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    exec(compile("\n".join(blocks), str(README), "exec"), {})


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    assert text.index("<!-- main-command -->") < text.index("<!-- test-command -->") < text.index("## ")


def test_readme_cli_examples_run_when_pasted(tmp_path):
    """Each `flowcore …` line of the README's bash blocks (not the install commands) runs as pasted
    into a shell: no `;` split by the shell, no missing quotes."""
    import shlex
    import subprocess
    import sys
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    lines = [ln.split("#")[0].strip() for b in blocks for ln in b.splitlines()]
    lines = [ln for ln in lines if ln.startswith("flowcore ") and " tour" not in ln]
    assert len(lines) >= 3
    from concurrent.futures import ThreadPoolExecutor

    def paste(ln):
        return ln, subprocess.run([sys.executable, "-m", "flowcore.cli", *shlex.split(ln)[1:]],
                                  capture_output=True, text=True, cwd=tmp_path)

    with ThreadPoolExecutor(2) as pool:          # two shells at once: the lines write different files
        for ln, proc in pool.map(paste, lines):
            assert proc.returncode == 0, (ln, proc.stderr[-2000:])
    assert (tmp_path / "b.png").exists() and (tmp_path / "p_reim.png").exists() and (tmp_path / "t.png").exists()
