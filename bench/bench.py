#!/usr/bin/env python3
"""AppModule benchmarks (issue 11, and the benchmark part of issue 6): install cost against the raw
tools measured in the same run, on the same machine, with the same image tar and compose file.

Run through `make bench` (bench/run.sh builds what this needs). Everything is a ratio within one run
(median of BENCH_REPS >= 3 runs), because the machines are shared and absolute times are noisy.

Measurements (see bench/README.md for the method):
  1. full-image install through `app` (the Mender client's state calls on a File API tree made by
     `app unpack`), and once through the real Mender client 3.4, vs `docker load` + `compose up -d`;
  2. bytes written to disk by `app` and its children during the install (the client's own copy of
     the payload excluded) and the peak RSS of `app` + its sub-module (process tree polled);
  3. start-up time of each executable for a trivial call vs a Native AOT hello world (hyperfine), and
     each executable's size as published;
  4. delta artifacts (whole-image and deep, 5 % of the layer changed, and an added layer): size and
     install time vs the full artifact of the same new image, and for each delta install the extra disk
     written and the peak RSS (of `app` + sub-module, and of the whole process tree);
  5. app-gen writing a full artifact vs `docker save | gzip` of the same image.

Environment: BENCH_REPS (3), BENCH_LAYER_MIB (300), BENCH_WORK (/var/tmp/appmodule-bench),
APPMODULE_BIN_DIR (<repo>/out/linux-x64), BENCH_HELLO (<repo>/out/bench/hello), BENCH_OUT (results
file), BENCH_ONLY (comma list of sections to run: startup,appgen,full,deltas), BENCH_KEEP=1 (keep work dir/images).
"""
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(os.environ.get("APPMODULE_BIN_DIR") or os.path.join(TOP, "out", "linux-x64"))
HELLO = os.path.abspath(os.environ.get("BENCH_HELLO") or os.path.join(TOP, "out", "bench", "hello"))
WORK = os.path.abspath(os.environ.get("BENCH_WORK") or "/var/tmp/appmodule-bench")
REPS = max(3, int(os.environ.get("BENCH_REPS", "3")))
LAYER_MIB = int(os.environ.get("BENCH_LAYER_MIB", "300"))
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
KEEP = os.environ.get("BENCH_KEEP") == "1"
DOCKER = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else shutil.which("docker")
APP_NAME = "appmodulebench"          # application name = Compose project of the `app` installs
FLOOR_PROJECT = "appmodulebenchfloor"  # Compose project of the raw-tool runs
REPO = "appmodule-bench/big"
EXECUTABLES = ("app", "docker-compose", "k8s", "app-gen", "fleet-updater", "fleet-agent")
MAX_EXE_BYTES = 15_000_000
MAX_RSS = 30 * (1 << 20)  # peak RSS of `app` + sub-module during an install (issue 19)
MiB = 1 << 20

# Children see /usr/bin first: the engine is Docker 20.10 and /usr/local/bin/docker is a newer CLI.
ENV = dict(os.environ)
ENV["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin:" + ENV.get("PATH", "")


T0 = time.monotonic()
SECTIONS = {}  # section -> seconds


def say(msg):
    print(f"==> [{(time.monotonic() - T0) / 60:4.1f} min] {msg}", file=sys.stderr, flush=True)


def timed(name, fn, *args):
    t = time.monotonic()
    try:
        return fn(*args)
    finally:
        SECTIONS[name] = time.monotonic() - t


class BenchError(Exception):
    pass


def run(argv, *, cwd=None, env=None, check=True, log=None, stdin=subprocess.DEVNULL, shell=False):
    """Runs a command; its output goes to `log` (a file path) or is captured. Returns (seconds, stdout)."""
    out = open(log, "ab") if log else subprocess.PIPE
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, cwd=cwd, env=env or ENV, stdin=stdin, stdout=subprocess.PIPE,
                           stderr=out if log else subprocess.PIPE, shell=shell, executable="/bin/bash" if shell else None)
    finally:
        if log:
            out.close()
    dt = time.monotonic() - t0
    if check and p.returncode != 0:
        err = p.stderr.decode(errors="replace") if p.stderr else (open(log, errors="replace").read()[-3000:] if log else "")
        shown = argv if isinstance(argv, str) else " ".join(argv)
        raise BenchError(f"`{shown}` failed with exit {p.returncode}:\n{err[-3000:]}")
    return dt, p.stdout.decode(errors="replace")


def sh(cmd, **kw):
    return run(cmd, shell=True, **kw)


def docker(*args, check=True):
    return run([DOCKER, *args], check=check)[1]


def compose_cmd():
    """`docker compose` (v2 plugin) when present, else docker-compose v1; the sub-module is given the same."""
    p = subprocess.run([DOCKER, "compose", "version"], capture_output=True, env=ENV)
    if p.returncode == 0:
        return [DOCKER, "compose"]
    v1 = shutil.which("docker-compose", path="/usr/bin:/usr/local/bin")
    if v1:
        return [v1]
    raise BenchError("no Compose CLI: install the v2 plugin or docker-compose (make deps does)")


COMPOSE = None


def median(xs):
    return statistics.median(xs)


def fmt_s(x):
    return f"{x:.2f} s"


def fmt_mib(b):
    return f"{b / MiB:.1f} MiB"


def ratio(a, b):
    return a / b if b else float("nan")


# ----------------------------------------------------------------------------------------- machine

def machine():
    def first(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, env=ENV, shell=isinstance(cmd, str)).stdout.strip()
        except OSError:
            return "?"
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "host": socket.gethostname(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram": f"{mem / (1 << 30):.1f} GiB",
        "kernel": os.uname().release,
        "os": first("sed -n 's/^PRETTY_NAME=//p' /etc/os-release | tr -d '\"'"),
        "docker": first([DOCKER, "version", "--format", "engine {{.Server.Version}}, CLI {{.Client.Version}}"]),
        "compose": ("docker compose " if COMPOSE[0] == DOCKER else "docker-compose ") + first([*COMPOSE, "version", "--short"]),
        "compose_v1": first(["docker-compose", "version", "--short"]) if shutil.which("docker-compose") else "absent",
        "mender": first("mender --version 2>&1 | head -1 | cut -f1"),
        "load": open("/proc/loadavg").read().split()[:3],
    }


# ------------------------------------------------------------------------------------------- data

def keystream(seed, size):
    """`size` deterministic pseudo-random bytes (AES-128-CTR of zeros keyed by the seed, via openssl:
    GB/s, where Python's own generator manages ~15 MB/s here), in chunks of up to 16 MiB."""
    p = subprocess.Popen(["openssl", "enc", "-aes-128-ctr", "-nosalt", "-K", f"{seed:032x}", "-iv", "0", "-in", "/dev/zero"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        left = size
        while left > 0:
            b = p.stdout.read(min(left, 16 * MiB))
            if not b:
                raise BenchError("openssl stopped producing the test data (is openssl installed?)")
            left -= len(b)
            yield b
    finally:
        p.kill()
        p.wait()


def write_blob(path, size, seed, kind="random"):
    """Deterministic content: random bytes, or the compressible variant: every 1 KiB holds 360 random
    bytes and 664 zeros (gzip: about 2.7x, at deflate's normal speed; a low-entropy alphabet instead
    sends gzip into its slow path, 1-3 MB/s, which is no layer's typical content)."""
    with open(path, "wb") as f:
        for b in keystream(seed, size if kind == "random" else size * 360 // 1024 + 360):
            if kind == "random":
                f.write(b)
                continue
            out = bytearray(len(b) // 360 * 1024)
            for i in range(len(b) // 360):
                out[i * 1024:i * 1024 + 360] = b[i * 360:(i + 1) * 360]
            f.write(out)
        f.truncate(size)
    os.utime(path, (0, 0))


def change_blob(src, dst, fraction, seed):
    """Copies src and overwrites `fraction` of it, in 256 KiB chunks spread evenly, with other random bytes."""
    shutil.copyfile(src, dst)
    size = os.path.getsize(src)
    chunk = 256 * 1024
    count = max(1, int(size * fraction) // chunk)
    stride = size // count
    data = b"".join(keystream(seed, count * chunk))
    with open(dst, "r+b") as f:
        for i in range(count):
            f.seek(i * stride + stride // 3)
            f.write(data[i * chunk:(i + 1) * chunk])
    os.utime(dst, (0, 0))
    return count * chunk


def build_image(tag, base, files):
    """docker build (classic builder) of `base` + COPY of the given files (name -> path) into /data."""
    ctx = os.path.join(WORK, "ctx")
    shutil.rmtree(ctx, ignore_errors=True)
    os.makedirs(ctx)
    lines = [f"FROM {base}"]
    for name, path in files.items():
        try:
            os.link(path, os.path.join(ctx, name))
        except OSError:
            shutil.copy2(path, os.path.join(ctx, name))
        lines.append(f"COPY {name} /data/{name}")
    lines.append('CMD ["sleep", "86400"]')
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("\n".join(lines) + "\n")
    env = dict(ENV, DOCKER_BUILDKIT="0")
    run([DOCKER, "build", "-q", "-t", tag, ctx], env=env)
    shutil.rmtree(ctx, ignore_errors=True)
    return docker("image", "inspect", "--format", "{{.Id}}", tag).strip()


def manifests_for(image):
    """The small compose app: the big image and a sidecar from appmodule/busybox:base, no healthchecks
    (`compose up -d` does not wait for health either), stopped with SIGKILL so resets are quick."""
    d = os.path.join(WORK, "manifests", image.split(":")[-1])
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "docker-compose.yml"), "w") as f:
        f.write(f"""services:
  big:
    image: {image}
    command: ["sleep", "86400"]
    stop_signal: SIGKILL
  sidecar:
    image: appmodule/busybox:base
    command: ["sleep", "86400"]
    stop_signal: SIGKILL
""")
    return d


# ------------------------------------------------------------------------------ process monitoring

class TreeMonitor:
    """Polls the process tree under one root pid every 10 ms: the peak of the summed RSS of our
    executables (those under BIN) and of the whole tree (incl. docker/compose CLIs), plus every
    process's own peak (VmHWM, exact even between polls)."""

    def __init__(self):
        self.ours = {os.path.realpath(os.path.join(BIN, n)) for n in os.listdir(BIN)}
        self.peak_ours = 0
        self.peak_all = 0
        self.peak_what = ""
        self.hwm = {}  # exe name -> max VmHWM
        self.root = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _children(self, pid):
        kids = []
        try:
            for t in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{t}/children") as f:
                    kids.extend(int(x) for x in f.read().split())
        except OSError:
            pass
        return kids

    def _sample(self, root):
        todo, ours, total, seen = [(root, None)], 0, 0, []
        while todo:
            pid, parent_exe = todo.pop()
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            todo.extend((k, exe) for k in self._children(pid))
            if exe == parent_exe:
                continue  # forked, not yet exec'd: its pages are the parent's, counted there
            try:
                rss = hwm = 0
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            rss = int(line.split()[1]) * 1024
                        elif line.startswith("VmHWM:"):
                            hwm = int(line.split()[1]) * 1024
            except OSError:
                continue
            name = os.path.basename(exe)
            mine = exe in self.ours
            key = name if mine else f"{name} (external)"
            self.hwm[key] = max(self.hwm.get(key, 0), hwm)
            total += rss
            if mine:
                ours += rss
                seen.append(f"{name} {rss / MiB:.1f}")
        if ours > self.peak_ours:
            self.peak_ours = ours
            self.peak_what = " + ".join(seen)
        self.peak_all = max(self.peak_all, total)

    def _loop(self):
        while not self._stop.is_set():
            r = self.root
            if r:
                self._sample(r)
            time.sleep(0.01)

    def stop(self):
        self._stop.set()
        self._t.join()


def self_io():
    """This process's I/O counters, which include those of every child it has reaped (Linux adds a
    reaped child's counters, and those of the child's own reaped children, to its parent's)."""
    d = {}
    with open("/proc/self/io") as f:
        for line in f:
            k, v = line.split(":")
            d[k] = int(v)
    return d


def run_monitored(argv, cwd, env, log, mon):
    """Like run(), but the monitor polls the child's process tree while it runs, and each stderr line
    is logged with the seconds since the start. Returns (seconds, stdout, [(seconds, line)])."""
    lines = []
    with open(log, "a") as lf:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if mon:
            mon.root = p.pid

        def pump():
            for raw in p.stderr:
                line = raw.decode(errors="replace").rstrip("\n")
                dt = time.monotonic() - t0
                lines.append((dt, line))
                lf.write(f"[{dt:7.3f}] {line}\n")
        t = threading.Thread(target=pump, daemon=True)
        t.start()
        out = p.stdout.read()
        p.wait()
        t.join()
        if mon:
            mon.root = None
        dt = time.monotonic() - t0
    if p.returncode != 0:
        raise BenchError(f"`{' '.join(argv)}` failed with exit {p.returncode}; see {log}:\n" + "\n".join(l for _, l in lines[-30:]))
    return dt, out.decode(errors="replace"), lines


# Where ArtifactInstall's time goes, from the log lines of `app` (their text, so a missing marker shows as "–").
PHASES = [  # (name, marker that ends the phase)
    ("pre-checks (REQS, payload scan)", "pre-checks passed"),
    ("LOAD", "info: loaded "),
    ("ROLLOUT", "waiting up to"),
    ("health gate", "alive and healthy after"),
]


def phases(lines, total):
    out, last = {}, 0.0
    for name, marker in PHASES:
        at = next((dt for dt, l in lines if marker in l), None)
        if at is None:
            out[name] = None
            continue
        out[name] = at - last
        last = at
    out["rest (store, exit)"] = total - last
    return out


# ------------------------------------------------------------------------------------ app harness

class Device:
    """A device's `app` setup under WORK/run: config, persistent store, sub-module dir and state."""

    def __init__(self):
        self.root = os.path.join(WORK, "run")
        self.log = os.path.join(WORK, "app.log")
        self.env = dict(ENV)
        self.env["MENDER_APP_CONFIG"] = os.path.join(WORK, "mender-app.conf")
        self.env["MENDER_APP_DOCKER_COMPOSE_CONF"] = os.path.join(WORK, "mender-app-docker-compose.conf")
        subs = os.path.join(WORK, "app-modules")
        os.makedirs(subs, exist_ok=True)
        link = os.path.join(subs, "docker-compose")
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.join(BIN, "docker-compose"), link)
        with open(self.env["MENDER_APP_CONFIG"], "w") as f:
            f.write(f'persistent_store = "{self.root}/store"\nsubmodules_dir = "{subs}"\n'
                    'health_timeout_seconds = 120\nsoak_seconds = 0\nlog_level = "info"\n')
        with open(self.env["MENDER_APP_DOCKER_COMPOSE_CONF"], "w") as f:
            f.write(f'docker_compose_command = "{" ".join(COMPOSE)}"\ndocker_command = "{DOCKER}"\n'
                    f'soak_seconds = 0\nstate_dir = "{self.root}/docker-compose"\n')

    def reset(self, remove_images=()):
        """Nothing of the application runs, the store is empty, and the given images are gone."""
        for p in (APP_NAME, FLOOR_PROJECT):
            run([*COMPOSE, "-p", p, "down", "--remove-orphans"], check=False) if COMPOSE[0] == DOCKER else \
                run([*COMPOSE, "-p", p, "-f", "/dev/null", "down"], check=False)
        leftovers = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={APP_NAME}").split() + \
            docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={FLOOR_PROJECT}").split()
        if leftovers:
            docker("rm", "-f", *leftovers, check=False)
        for image in remove_images:
            run([DOCKER, "image", "rm", "-f", image], check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.root)

    def app(self, *args, cwd=None, mon=None):
        argv = [os.path.join(BIN, "app"), *args]
        return run_monitored(argv, cwd or self.root, self.env, self.log, mon)

    STATES = ["Download", "SupportsRollback", "ArtifactInstall", "NeedsArtifactReboot", "ArtifactCommit", "Cleanup"]

    def install(self, artifact, monitor=False):
        """`app unpack` (the client's part, not timed), then the state calls as Mender 3.4 makes them for
        an install followed by a commit. Returns seconds per state (+ total), and the monitor data."""
        tree = os.path.join(self.root, "tree")
        shutil.rmtree(tree, ignore_errors=True)
        run([os.path.join(BIN, "app"), "unpack", artifact, tree], env=self.env, log=self.log)
        mon = TreeMonitor() if monitor else None
        io0 = self_io()
        times = {}
        try:
            for s in self.STATES:
                dt, out, lines = self.app(s, tree, cwd=tree, mon=mon)
                times[s] = dt
                if s == "ArtifactInstall":
                    times["phases"] = phases(lines, dt)
                if s == "SupportsRollback" and out not in ("Yes\n", "No\n", "", "\n"):
                    raise BenchError(f"SupportsRollback answered {out!r}")
        finally:
            if mon:
                mon.stop()
        io1 = self_io()
        times["total"] = sum(times[s] for s in self.STATES)
        extra = {}
        if monitor:
            extra = {
                "write_bytes": io1["write_bytes"] - io0["write_bytes"],
                "cancelled_write_bytes": io1["cancelled_write_bytes"] - io0["cancelled_write_bytes"],
                "left_bytes": du(os.path.join(tree, "tmp")) + du(os.path.join(self.root, "store")) + du(os.path.join(self.root, "docker-compose")),
                "peak_ours": mon.peak_ours, "peak_what": mon.peak_what, "peak_all": mon.peak_all, "hwm": dict(mon.hwm),
            }
        shutil.rmtree(tree, ignore_errors=True)
        return times, extra


def du(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for n in files:
            try:
                st = os.lstat(os.path.join(dirpath, n))
                total += st.st_blocks * 512
            except OSError:
                pass
    return total


class Mender:
    """The real Mender client 3.4, standalone, isolated in a private mount namespace (as
    tests/TestSupport/MenderClient.cs does): bind mounts over /usr/share/mender/modules/v3 and /etc/mender."""

    SCRIPT = ('set -e; mount --bind "$M_MODULES" /usr/share/mender/modules/v3; mount --bind "$M_ETC" /etc/mender; '
              'exec mender --config "$M_CONFIG" --fallback-config /nonexistent/mender.conf --data "$M_DATA" --no-syslog --log-level info "$@"')

    def __init__(self, device):
        self.root = os.path.join(WORK, "mender")
        shutil.rmtree(self.root, ignore_errors=True)
        for d in ("modules", "etc", "data"):
            os.makedirs(os.path.join(self.root, d))
        os.symlink(os.path.join(BIN, "app"), os.path.join(self.root, "modules", "app"))
        with open(os.path.join(self.root, "data", "device_type"), "w") as f:
            f.write("device_type=bench-device\n")
        with open(os.path.join(self.root, "etc", "artifact_info"), "w") as f:
            f.write("artifact_name=initial\n")
        with open(os.path.join(self.root, "mender.conf"), "w") as f:
            f.write('{"ModuleTimeoutSeconds": 1800}\n')
        self.env = dict(device.env, M_MODULES=os.path.join(self.root, "modules"), M_ETC=os.path.join(self.root, "etc"),
                        M_CONFIG=os.path.join(self.root, "mender.conf"), M_DATA=os.path.join(self.root, "data"))
        self.log = os.path.join(WORK, "mender.log")

    @staticmethod
    def available():
        if not shutil.which("mender") or not os.path.isdir("/usr/share/mender/modules/v3") or not os.path.isdir("/etc/mender"):
            return "mender-client is not installed (make deps installs it)"
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True)
        return None if p.returncode == 0 else "no private mount namespace (needs root with CAP_SYS_ADMIN): " + p.stderr.strip()

    def mender(self, *args, check=True):
        return run(["unshare", "--mount", "--propagation", "private", "/bin/bash", "-c", self.SCRIPT, "mender", *args],
                   env=self.env, log=self.log, check=check)[0]

    def install_and_commit(self, artifact):
        shutil.rmtree(os.path.join(self.root, "data", "modules"), ignore_errors=True)
        for f in ("mender-store", "mender-store-lock"):
            if os.path.exists(os.path.join(self.root, "data", f)):
                os.remove(os.path.join(self.root, "data", f))
        t_install = self.mender("install", artifact)
        # `app` answers SupportsRollback: Yes, so the install is pending until `mender commit`
        # (ArtifactCommit, Cleanup); with No the client would have committed already (commit: exit 2).
        t_commit = self.mender("commit", check=False)
        return t_install, t_commit


# ------------------------------------------------------------------------------------ the sections

def app_gen(image_args, out, name, manifests, extra=()):
    argv = [os.path.join(BIN, "app-gen"), "-q", "-n", name, "-t", "bench-device", "-a", APP_NAME, "-r", "docker-compose",
            "-p", "linux/amd64", "-m", manifests, "-o", out, *extra]
    for i in image_args:
        argv += ["--image", i]
    return run(argv, log=os.path.join(WORK, "app-gen.log"))[0]


def section_startup(results):
    say("start-up: hyperfine, each executable's trivial call vs a Native AOT hello world")
    hf = shutil.which("hyperfine")
    if not hf:
        raise BenchError("hyperfine is missing: apt-get install hyperfine (make deps does)")
    if not os.access(HELLO, os.X_OK):
        raise BenchError(f"{HELLO} is missing: dotnet publish bench/hello -c Release -r linux-x64 -o out/bench (bench/run.sh does)")
    calls = [("hello (Native AOT)", [HELLO])]
    for exe, args, what in [("app", ["--help"], "app --help"), ("docker-compose", [], "docker-compose (no call: usage, exit 2)"),
                            ("k8s", [], "k8s (no call: usage, exit 2)"), ("app-gen", ["--help"], "app-gen --help"),
                            ("fleet-updater", ["--help"], "fleet-updater --help"), ("fleet-agent", ["--help"], "fleet-agent --help")]:
        path = os.path.join(BIN, exe)
        if os.access(path, os.X_OK):
            calls.append((what, [path, *args]))
    # Rounds of a few runs of every command, so that a burst of load on the shared machine hits all
    # of them alike rather than whichever command hyperfine happened to be running.
    js = os.path.join(WORK, "hyperfine.json")
    times = {name: [] for name, _ in calls}
    cpu = {name: [] for name, _ in calls}
    for _ in range(12):
        cmd = [hf, "-N", "-i", "--style", "none", "--warmup", "1", "--runs", "5", "--export-json", js]
        for name, argv in calls:
            cmd += ["-n", name, " ".join(argv)]
        run(cmd, log=os.path.join(WORK, "hyperfine.log"))
        with open(js) as f:
            for r in json.load(f)["results"]:
                times[r["command"]] += r["times"]
                cpu[r["command"]].append(r["user"] + r["system"])
    results["startup"] = [(name, median(t), statistics.mean(t), statistics.pstdev(t), min(t), median(cpu[name])) for name, t in times.items()]
    # Size of each shipped executable as published (`ls -l`): the goal is at most 15 MB each.
    results["sizes"] = [(exe, os.path.getsize(os.path.join(BIN, exe))) for exe in EXECUTABLES if os.path.exists(os.path.join(BIN, exe))]


def section_appgen(results, images, tars):
    say("app-gen: full artifact vs `docker save | gzip` of the same image")
    rows = []
    for variant in ("random", "text"):
        tag = images[variant]
        out = os.path.join(WORK, f"full-{variant}.mender")
        gz = os.path.join(WORK, f"save-{variant}.tar.gz")
        t_gen, t_ref = [], []
        for i in range(REPS):
            t_ref.append(sh(f"set -o pipefail; {DOCKER} save {tag} | gzip -c > {gz}")[0])
            t_gen.append(app_gen([tag], out, f"bench-full-{variant}", manifests_for(tag)))
        rows.append((variant, median(t_gen), median(t_ref), os.path.getsize(out), os.path.getsize(gz), os.path.getsize(tars[variant])))
        os.remove(gz)
    results["appgen"] = rows


def floor_once(dev, tag, tar, manifests):
    dev.reset(remove_images=[tag])
    t_load = run([DOCKER, "load", "-q", "-i", tar])[0]
    t_up = run([*COMPOSE, "-p", FLOOR_PROJECT, "--project-directory", manifests, "-f", os.path.join(manifests, "docker-compose.yml"), "up", "-d"])[0]
    return t_load, t_up


def section_full(results, dev, images, tars):
    say("full-image install: app (state calls) and the Mender client vs docker load + compose up")
    rows = []
    why_no_mender = Mender.available()
    for variant in ("random", "text"):
        tag, tar = images[variant], tars[variant]
        manifests = manifests_for(tag)
        artifact = os.path.join(WORK, f"full-{variant}.mender")
        if not os.path.exists(artifact):
            app_gen([tag], artifact, f"bench-full-{variant}", manifests)
        with_mender = variant == "random" and not why_no_mender
        mender = Mender(dev) if with_mender else None
        floor, ours, states, client = [], [], [], []
        for i in range(REPS):  # interleaved, so that load changes on the machine hit all alike
            say(f"  {variant} run {i + 1}/{REPS}")
            floor.append(floor_once(dev, tag, tar, manifests))
            dev.reset(remove_images=[tag])
            t, _ = dev.install(artifact)
            ours.append(t["total"])
            states.append(t)
            if mender and i == REPS // 2:  # once, between the runs it is compared with
                dev.reset(remove_images=[tag])
                client.append(mender.install_and_commit(artifact))
        row = {"variant": variant, "tar": os.path.getsize(tar), "artifact": os.path.getsize(artifact),
               "floor": median([a + b for a, b in floor]), "load": median([a for a, _ in floor]), "up": median([b for _, b in floor]),
               "app": median(ours), "states": {s: median([t[s] for t in states]) for s in Device.STATES},
               "phases": {k: median(v) if all(x is not None for x in v) else None
                          for k in states[0]["phases"] for v in [[t["phases"][k] for t in states]]}}
        if client:
            row["mender"] = (median([a + b for a, b in client]), median([a for a, _ in client]), median([b for _, b in client]))
        elif variant == "random":
            row["mender_skipped"] = why_no_mender
        # one more, instrumented (not timed): extra disk and peak RSS
        dev.reset(remove_images=[tag])
        _, row["monitor"] = dev.install(artifact, monitor=True)
        rows.append(row)
    dev.reset()
    results["full"] = rows


def section_deltas(results, dev, images, blobs):
    say("deltas: whole-image and deep, 5 % of the layer changed and an added layer, vs the full artifact")
    base = images["random"]
    rows = []
    for change in ("5pct", "layer"):
        new = images[change]
        manifests = manifests_for(new)
        arts = {}
        gen = {}
        for kind, imgs, extra in (("full", [new], ()), ("whole-image delta", [f"{base},{new}"], ()), ("deep delta", [f"{base},{new}"], ("--deep-delta",))):
            path = os.path.join(WORK, f"{change}-{kind.split()[0]}.mender")
            say(f"  app-gen {change}: {kind}")
            gen[kind] = app_gen(imgs, path, f"bench-{change}-{kind.split()[0]}", manifests, extra)
            arts[kind] = path
        times = {k: [] for k in arts}
        phs = {k: [] for k in arts}
        mons = {}
        for i in range(REPS):
            for kind, path in arts.items():
                say(f"  install {change} {kind} run {i + 1}/{REPS}")
                ensure_image(base, blobs)
                dev.reset(remove_images=[new])
                t, _ = dev.install(path)
                times[kind].append(t["total"])
                phs[kind].append(t["phases"])
        for kind, path in arts.items():
            if kind != "full":  # full installs: instrumented in section_full
                ensure_image(base, blobs)
                dev.reset(remove_images=[new])
                _, mons[kind] = dev.install(path, monitor=True)
        full_size, full_time = os.path.getsize(arts["full"]), median(times["full"])
        for kind, path in arts.items():
            rows.append({"change": change, "kind": kind, "size": os.path.getsize(path), "image": image_size(new), "size_ratio": os.path.getsize(path) / full_size,
                         "changed_source": (LAYER_MIB * MiB + 64 * 1024) if change == "5pct" else 0,
                         "install": median(times[kind]), "install_ratio": median(times[kind]) / full_time, "gen": gen[kind], "monitor": mons.get(kind),
                         "phases": {k: median(v) if all(x is not None for x in v) else None
                                    for k in phs[kind][0] for v in [[p[k] for p in phs[kind]]]}})
    dev.reset()
    results["deltas"] = rows


def image_size(tag):
    """The image's size in the engine (all layers, uncompressed): about the size of its `docker save` tar."""
    return int(docker("image", "inspect", "--format", "{{.Size}}", tag).strip())


def delta_images(dev, images, blobs):
    """The new images of the deltas: 5 % of the random layer changed; one small layer added on top."""
    ensure_image(images["random"], blobs)
    say("delta images: 5 % of the layer changed; one small layer added")
    changed = os.path.join(WORK, "random5.bin")
    change_blob(os.path.join(WORK, "random.bin"), changed, 0.05, 3)
    images["5pct"] = f"{REPO}:random5-{LAYER_MIB}"
    dev.reset(remove_images=[images["5pct"]])
    build_image(images["5pct"], "appmodule/busybox:base", {"blob": changed})
    os.remove(changed)
    extra = os.path.join(WORK, "extra.bin")
    write_blob(extra, 4 * MiB, 4)
    images["layer"] = f"{REPO}:plus-{LAYER_MIB}"
    dev.reset(remove_images=[images["layer"]])
    build_image(images["layer"], images["random"], {"extra": extra})


def ensure_image(tag, blobs):
    if subprocess.run([DOCKER, "image", "inspect", tag], capture_output=True).returncode != 0:
        run([DOCKER, "load", "-q", "-i", blobs["tar:" + tag]])


# ------------------------------------------------------------------------------------------ report

def report(results, m, started):
    L = []
    w = L.append
    goals = []  # (item, measured, reference, ratio, goal, met)

    full = {r["variant"]: r for r in results.get("full", [])}
    for variant, r in full.items():
        rt = r["app"] / r["floor"]
        goals.append((f"1. install, full image ({variant} layer), `app` state calls", fmt_s(r["app"]), f"{fmt_s(r['floor'])} load + up",
                      f"{rt:.2f}×", "≤ 1.05×", rt <= 1.05))
        if "mender" in r:
            t = r["mender"][0]
            rt = t / r["floor"]
            goals.append((f"1. install, full image ({variant}), through the Mender client 3.4 (1 run)", fmt_s(t), f"{fmt_s(r['floor'])} load + up",
                          f"{rt:.2f}×", "≤ 1.15×", rt <= 1.15))
    for variant, r in full.items():
        mon = r["monitor"]
        pct = mon["write_bytes"] / r["tar"]
        goals.append((f"2. extra disk written, full image ({variant})", fmt_mib(mon["write_bytes"]), f"image {fmt_mib(r['tar'])}",
                      f"{pct * 100:.1f} %", "≤ 5 %", pct <= 0.05))
    for variant, r in full.items():
        mon = r["monitor"]
        goals.append((f"2. peak RSS, `app` + sub-module ({variant})", fmt_mib(mon["peak_ours"]), "–", "–", "≤ 30 MiB", mon["peak_ours"] <= MAX_RSS))
        goals.append((f"2. peak RSS, whole process tree incl. Compose/docker CLIs ({variant})", fmt_mib(mon["peak_all"]), "–", "–", "–", None))
    for d in results.get("deltas", []):
        if d["monitor"]:
            mon = d["monitor"]
            label = "5 % changed" if d["change"] == "5pct" else "one layer added"
            # Goal: no more than the bytes of the changed layers' sources (the base layer a delta reads at random);
            # about 0 when a layer was only added (nothing of the base is read at random).
            allowed = d["changed_source"]
            goals.append((f"2. extra disk written, {d['kind']} install ({label})", fmt_mib(mon["write_bytes"]),
                          f"changed layers' sources {fmt_mib(allowed)}", f"{mon['write_bytes'] / d['image'] * 100:.0f} % of the image",
                          f"≤ {fmt_mib(allowed)}", mon["write_bytes"] <= allowed + 2 * MiB))
            goals.append((f"2. peak RSS, `app` + sub-module, {d['kind']} install ({label})", fmt_mib(mon["peak_ours"]), "–", "–", "≤ 30 MiB",
                          mon["peak_ours"] <= MAX_RSS))
            goals.append((f"2. peak RSS, whole process tree, {d['kind']} install ({label})", fmt_mib(mon["peak_all"]), "–", "–", "–", None))
    startup = results.get("startup", [])
    if startup:
        hello = startup[0][1]
        for name, med, *_ in startup[1:]:
            rt = med / hello
            goals.append((f"3. start-up, {name}", f"{med * 1000:.1f} ms", f"hello {hello * 1000:.1f} ms", f"{rt:.2f}×", "≤ 1.5×", rt <= 1.5))
    for d in results.get("deltas", []):
        if d["kind"] == "full":
            continue
        label = "5 % of the layer changed" if d["change"] == "5pct" else "one layer added"
        goal = d["kind"] == "deep delta" and d["change"] == "5pct"
        goals.append((f"4. {d['kind']} size, {label}", fmt_mib(d["size"]), "full artifact", f"{d['size_ratio'] * 100:.1f} %",
                      "≤ 10 %" if goal else "–", (d["size_ratio"] <= 0.10) if goal else None))
        goals.append((f"4. {d['kind']} install, {label}", fmt_s(d["install"]), "full artifact", f"{d['install_ratio']:.2f}×", "≤ 1.0×", d["install_ratio"] <= 1.0))
    for exe, size in results.get("sizes", []):
        goals.append((f"3. size, {exe} (`ls -l` after publish)", f"{size / 1e6:.1f} MB", "–", "–", "≤ 15 MB", size <= MAX_EXE_BYTES))
    for variant, t_gen, t_ref, *_ in results.get("appgen", []):
        goals.append((f"5. app-gen full artifact ({variant})", fmt_s(t_gen), f"{fmt_s(t_ref)} save \\| gzip", f"{t_gen / t_ref:.2f}×", "–", None))

    w(f"Run {started:%Y-%m-%d %H:%M} UTC on `{m['host']}`: {m['nproc']} cores ({m['cpu']}), {m['ram']} RAM, kernel {m['kernel']}, {m['os']}; "
      f"Docker {m['docker']}; {m['compose']} (Compose v1: {m['compose_v1']}); Mender client {m['mender']}. "
      f"Load average at start {' '.join(m['load'])}. Layer {LAYER_MIB} MiB; medians of {REPS} runs; ratios are within this run.")
    w("")
    w("| measure | ours | reference (same run) | ratio | goal | met |")
    w("|---|---|---|---|---|---|")
    for item, ours, ref, rt, goal, met in goals:
        w(f"| {item} | {ours} | {ref} | {rt} | {goal} | {'✅' if met else '❌' if met is False else ''} |")
    w("")

    if full:
        w("Full-image install, per step (medians):")
        w("")
        w("| layer | image tar | artifact | docker load | compose up | app: Download | SupportsRollback | ArtifactInstall | NeedsArtifactReboot | ArtifactCommit | Cleanup |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        for v, r in full.items():
            s = r["states"]
            w(f"| {v} | {fmt_mib(r['tar'])} | {fmt_mib(r['artifact'])} | {fmt_s(r['load'])} | {fmt_s(r['up'])} | " +
              " | ".join(fmt_s(s[x]) for x in Device.STATES) + " |")
        w("")
        w("Where ArtifactInstall's time goes (medians, from the times of `app`'s log lines):")
        w("")
        names = list(next(iter(full.values()))["phases"])
        w("| layer | " + " | ".join(names) + " |")
        w("|---|" + "---|" * len(names))
        for v, r in full.items():
            w(f"| {v} | " + " | ".join(fmt_s(r["phases"][n]) if r["phases"][n] is not None else "–" for n in names) + " |")
        for v, r in full.items():
            if "mender" in r:
                w("")
                w(f"Mender client ({v}): `mender install` {fmt_s(r['mender'][1])} + `mender commit` {fmt_s(r['mender'][2])} "
                  f"(the client decompresses `data/0000.tar.gz`, checks the sums and stores the payload files in its data dir before ArtifactInstall; "
                  f"the state-call runs leave that to `app unpack`, untimed).")
            elif "mender_skipped" in r:
                w("")
                w(f"Mender client: skipped ({r['mender_skipped']}).")
        w("")
    mons = [(f"full image ({v})", r["monitor"], r["tar"]) for v, r in full.items()] + \
           [(f"{d['kind']}, {'5 % changed' if d['change'] == '5pct' else 'layer added'}", d["monitor"], None) for d in results.get("deltas", []) if d["monitor"]]
    if mons:
        w("Disk and memory of one extra (untimed) install each: bytes `app` and its children wrote "
          "(`write_bytes` of reaped children; cancelled = written then deleted before writeback), what was left in tmp/ and the store, "
          "and peak RSS (summed over the process tree, polled every 10 ms; per-executable VmHWM):")
        w("")
        w("| install | written | cancelled | left on disk | peak RSS app + sub-module | peak RSS incl. docker/compose CLIs | per executable (VmHWM) |")
        w("|---|---|---|---|---|---|---|")
        for name, mon, _ in mons:
            per = ", ".join(f"{k} {v / MiB:.1f}" for k, v in sorted(mon["hwm"].items(), key=lambda kv: -kv[1]))
            w(f"| {name} | {fmt_mib(mon['write_bytes'])} | {fmt_mib(mon['cancelled_write_bytes'])} | {fmt_mib(mon['left_bytes'])} | "
              f"{fmt_mib(mon['peak_ours'])} ({mon['peak_what']}) | {fmt_mib(mon['peak_all'])} | {per} MiB |")
        w("")
    if results.get("deltas"):
        w("Delta artifacts (new image vs the full artifact of the same new image; the base image is in the engine, the new one is not):")
        w("")
        w("| change | artifact | size | size vs full | install | install vs full | app-gen time |")
        w("|---|---|---|---|---|---|---|")
        for d in results["deltas"]:
            w(f"| {'5 % of the layer' if d['change'] == '5pct' else 'one layer added'} | {d['kind']} | {fmt_mib(d['size'])} | "
              f"{d['size_ratio'] * 100:.1f} % | {fmt_s(d['install'])} | {d['install_ratio']:.2f}× | {fmt_s(d['gen'])} |")
        w("")
        names = list(results["deltas"][0]["phases"])
        w("Delta installs, where ArtifactInstall's time goes (medians; a delta's pre-checks SAVE the base and check the delta, its LOAD decodes the new image straight into the engine):")
        w("")
        w("| change | artifact | " + " | ".join(names) + " |")
        w("|---|---|" + "---|" * len(names))
        for d in results["deltas"]:
            w(f"| {'5 % of the layer' if d['change'] == '5pct' else 'one layer added'} | {d['kind']} | " +
              " | ".join(fmt_s(d["phases"][n]) if d["phases"][n] is not None else "–" for n in names) + " |")
        w("")
    if startup:
        w("Start-up (hyperfine `-N`, warm cache; 12 interleaved rounds of 5 runs):")
        w("")
        w("| executable, call | median | min | mean ± σ | CPU (user + sys) | CPU vs hello |")
        w("|---|---|---|---|---|---|")
        for name, med, mean, sd, mn, c in startup:
            w(f"| {name} | {med * 1000:.1f} ms | {mn * 1000:.1f} ms | {mean * 1000:.1f} ± {sd * 1000:.1f} ms | {c * 1000:.1f} ms | {c / startup[0][5]:.2f}× |")
        w("")
    if results.get("appgen"):
        w("Artifact generation (medians):")
        w("")
        w("| layer | app-gen | artifact | docker save \\| gzip | .tar.gz | image tar |")
        w("|---|---|---|---|---|---|")
        for variant, t_gen, t_ref, art, gz, tar in results["appgen"]:
            w(f"| {variant} | {fmt_s(t_gen)} | {fmt_mib(art)} | {fmt_s(t_ref)} | {fmt_mib(gz)} | {fmt_mib(tar)} |")
        w("")
    w(f"Whole run: {(datetime.datetime.now(datetime.timezone.utc) - started).total_seconds() / 60:.1f} min ("
      + ", ".join(f"{k} {v / 60:.1f}" for k, v in SECTIONS.items()) + " min); load average at the end "
      + " ".join(open("/proc/loadavg").read().split()[:3]) + ".")
    return "\n".join(L) + "\n"


# -------------------------------------------------------------------------------------------- main

def main():
    global COMPOSE
    started = datetime.datetime.now(datetime.timezone.utc)
    if os.geteuid() != 0:
        raise BenchError("run as root (docker, mount namespaces for the Mender client)")
    for exe in ("app", "docker-compose", "app-gen"):
        if not os.access(os.path.join(BIN, exe), os.X_OK):
            raise BenchError(f"{BIN}/{exe} is missing: build/publish.sh linux-x64 (bench/run.sh does)")
    COMPOSE = compose_cmd()
    os.makedirs(WORK, exist_ok=True)
    m = machine()
    results = {}
    want = lambda s: not ONLY or s in ONLY
    dev = Device()
    images, tars, blobs = {}, {}, {}
    try:
        if want("startup"):
            timed("start-up", section_startup, results)
        if want("appgen") or want("full") or want("deltas"):
            say(f"test images: busybox base + one {LAYER_MIB} MiB layer (random, compressible)")
            size = LAYER_MIB * MiB
            for variant, seed in (("random", 1), ("text", 2)):
                if variant == "text" and not (want("appgen") or want("full")):
                    continue
                blob = os.path.join(WORK, f"{variant}.bin")
                write_blob(blob, size, seed, variant)
                tag = f"{REPO}:{variant}-{LAYER_MIB}"
                dev.reset(remove_images=[tag])
                build_image(tag, "appmodule/busybox:base", {"blob": blob})
                images[variant] = tag
                tars[variant] = os.path.join(WORK, f"{variant}.tar")
                blobs["tar:" + tag] = tars[variant]
                run([DOCKER, "save", "-o", tars[variant], tag])
                if variant != "random":
                    os.remove(blob)
        SECTIONS["test images"] = time.monotonic() - T0 - SECTIONS.get("start-up", 0)
        if want("appgen"):
            timed("app-gen", section_appgen, results, images, tars)
        if want("full"):
            timed("full installs", section_full, results, dev, images, tars)
        if want("deltas"):
            timed("deltas", lambda: (delta_images(dev, images, blobs), section_deltas(results, dev, images, blobs)))
    finally:
        dev.reset()
        if not KEEP:
            for tag in images.values():
                run([DOCKER, "image", "rm", "-f", tag], check=False)
            shutil.rmtree(WORK, ignore_errors=True)
    text = report(results, m, started)
    out = os.environ.get("BENCH_OUT")
    if out:
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            f.write(f"# Benchmarks {started:%Y-%m-%d} on {m['host']}\n\n" + text)
        with open(out.removesuffix(".md") + ".json", "w") as f:
            json.dump({"machine": m, "layer_mib": LAYER_MIB, "reps": REPS, "results": results}, f, indent=1, default=str)
    print(text, end="")


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
