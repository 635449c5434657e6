#!/usr/bin/env python3
# Tools suite: uffdwp-check's contract. The JSON has its stable keys and
# types; --feature agrees with the JSON; AUTO is the first usable backend;
# bad usage prints usage on stderr and exits 2; --threads lists the
# threads that block SIGSEGV.
# usage: test-cli.py PATH_TO_UFFDWP_CHECK
import json
import os
import subprocess
import sys

check = sys.argv[1]
failures = []


def run(*args, env=None):
    return subprocess.run([check, *args], capture_output=True, text=True,
                          timeout=60, env=env)


def expect(cond, what):
    if not cond:
        failures.append(what)


r = run("--json")
expect(r.returncode == 0, f"--json exit {r.returncode}: {r.stderr}")
j = json.loads(r.stdout)

expect(j["kernel"] == os.uname().release, "kernel is the release string")
expect(j["uffd"]["open_mode"] in
       ("dev_userfaultfd", "syscall", "user_mode_only", "none"), "open_mode")
expect(j["uffd"]["features"].startswith("0x"), "features is a hex string")
int(j["uffd"]["features"], 16)
names = ["uffd_async", "uffd_sync", "soft_dirty", "mprotect"]
expect(sorted(j["backends"]) == sorted(names), "backends keys")
for name in names:
    b = j["backends"][name]
    expect(isinstance(b["usable"], bool), f"{name}.usable is a bool")
    expect(isinstance(b["reason"], str) and len(b["reason"]) > 10,
           f"{name}.reason is a sentence")
first = next((n for n in names if j["backends"][n]["usable"]), None)
expect(j["auto"] == first, f"auto {j['auto']} is the first usable {first}")
want_mode = None
if j["auto"] == "uffd_sync":
    want_mode = ("self_service" if j["uffd"]["self_service"]
                 else "handler_thread")
expect(j["auto_mode"] == want_mode,
       f"auto_mode {j['auto_mode']} for auto {j['auto']}")
ids = [d["id"] for d in j["defects"]]
expect(len(ids) == len(set(ids)) and len(ids) >= 7, "defect ids")
for d in j["defects"]:
    expect(d["status"] in ("unknown", "absent", "present", "not-applicable"),
           f"defect {d['id']} status")
    expect(len(d["action"]) > 10, f"defect {d['id']} action")
if j["uffd"]["open_mode"] == "none":
    expect(j["uffd"]["blocked"], "blocked says why")
else:
    expect(j["uffd"]["blocked"] is None, "blocked is null")

# --feature agrees with the report.
feat = {
    "wp_async": "wp_async" in j["uffd"]["feature_names"],
    "pagemap_scan": j["pagemap_scan"],
    "soft_dirty": j["soft_dirty"],
    "uffd_wp": j["uffd"]["uffd_wp"],
    "dev_userfaultfd": j["uffd"]["modes"]["dev_userfaultfd"]["ok"],
    "user_mode_only": j["uffd"]["modes"]["user_mode_only"]["ok"],
    "uffd_async": j["backends"]["uffd_async"]["usable"],
    "mprotect": j["backends"]["mprotect"]["usable"],
}
for name, present in feat.items():
    rc = run("--feature", name).returncode
    expect(rc == (0 if present else 1), f"--feature {name}: exit {rc}")
expect(run("--feature", "wp-async").returncode == run("--feature", "wp_async").returncode,
       "feature names accept '-'")

# Usage errors.
for args in (["--bogus"], ["--feature", "no_such_feature"], ["--feature"],
             ["extra"]):
    r = run(*args)
    expect(r.returncode == 2, f"{args}: exit {r.returncode}")
    expect("Usage:" in r.stderr and r.stdout == "", f"{args}: usage on stderr")
r = run("--help")
expect(r.returncode == 0 and "Usage:" in r.stdout, "--help")

# The table names every backend and the choice.
r = run()
expect(r.returncode == 0, "table exit")
for name in names:
    expect(name in r.stdout, f"table lists {name}")
expect(f"auto: {j['auto']}" in r.stdout, "table names auto")

# --threads: a child with every signal blocked is listed (exit 1), a
# child with none blocked is not (exit 0); a bad pid is a usage error.
import signal
for blocked in (True, False):
    pre = ((lambda: signal.pthread_sigmask(signal.SIG_BLOCK,
                                           signal.valid_signals()))
           if blocked else None)
    child = subprocess.Popen(["sleep", "30"], preexec_fn=pre)
    try:
        r = run("--threads", str(child.pid))
    finally:
        child.kill()
        child.wait()
    expect(r.returncode == (1 if blocked else 0),
           f"--threads (blocked={blocked}): exit {r.returncode}")
    expect(r.stdout.startswith(f"thread {child.pid} (sleep) blocks SIGSEGV")
           if blocked else r.stdout.startswith("no thread of"),
           f"--threads (blocked={blocked}): {r.stdout!r}")
for args in (["--threads", "x1"], ["--threads", "1", "--json"]):
    r = run(*args)
    expect(r.returncode == 2, f"{args}: exit {r.returncode}")
r = run("--threads", "999999999")
expect(r.returncode == 3, f"--threads of no process: exit {r.returncode}")

# UFFDWP_BACKEND is reported as a context would honour it.
env = dict(os.environ, UFFDWP_BACKEND="mprotect")
jf = json.loads(run("--json", env=env).stdout)
expect(jf["forced"] == {"env": "mprotect", "backend": "mprotect",
                        "usable": True}, f"forced: {jf['forced']}")

for f in failures:
    print("FAIL:", f)
print(f"{len(failures)} failures; auto={j['auto']} kernel={j['kernel']}")
sys.exit(1 if failures else 0)
