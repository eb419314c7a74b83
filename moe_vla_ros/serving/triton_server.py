"""Run the `tritonserver` bundled in the nvidia-pytriton wheel of the server venv (.venv-triton).

    with TritonServer(repository) as server:      # ready when the block starts
        TritonPolicy.load(model_dir, server.grpc_url)

For tests, benchmarks and CPU-only servers (production fleets run NVIDIA's Triton image). The
server venv is built by scripts/setup_triton_server.sh (its own pins, numpy<2: on numpy 2
Triton's python backend corrupted inputs silently). The wheel's server tree is copied once into
a work folder with the python backend stub of the venv's Python version (what pytriton does);
the server runs with the venv's bin first on PATH and the interpreter's LIBDIR first on
LD_LIBRARY_PATH (else the stub may load the system libpython, not the venv's).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from moe_vla_ros.errors import FailedError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO_ROOT / ".venv-triton"
SETUP_SCRIPT = "scripts/setup_triton_server.sh"


class TritonServerError(FailedError):
    """The bundled tritonserver is missing or did not become ready."""


def server_venv(venv: str | os.PathLike | None = None) -> Path:
    """The server venv: `venv`, else $MOE_VLA_TRITON_VENV, else .venv-triton at the repository root."""
    return Path(venv or os.environ.get("MOE_VLA_TRITON_VENV") or DEFAULT_VENV)


def server_venv_problem(venv: str | os.PathLike | None = None) -> str:
    """"" when the server venv has a tritonserver and a python backend stub, else why not."""
    venv = server_venv(venv)
    python = venv / "bin" / "python"
    if not python.is_file():
        return f"no Triton server venv at {venv} (build it with bash {SETUP_SCRIPT})"
    dist = _dist_dir(venv)
    if dist is None or not (dist / "bin" / "tritonserver").is_file():
        return f"{venv} has no nvidia-pytriton tritonserver (bash {SETUP_SCRIPT})"
    if _stub(venv, dist) is None:
        return f"nvidia-pytriton in {venv} has no python backend stub for its Python"
    return ""


def _python_version(venv: Path) -> str:
    lib = sorted((venv / "lib").glob("python3.*"))
    return lib[-1].name.removeprefix("python") if lib else ""


def _dist_dir(venv: Path) -> Path | None:
    version = _python_version(venv)
    path = venv / "lib" / f"python{version}" / "site-packages" / "pytriton" / "tritonserver"
    return path if path.is_dir() else None


def _stub(venv: Path, dist: Path) -> Path | None:
    stub = dist / "python_backend_stubs" / _python_version(venv) / "triton_python_backend_stub"
    return stub if stub.is_file() else None


def _libdir(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def prepare_server(venv: Path, work_dir: Path) -> Path:
    """The server tree with the python backend stub in place (copied once under `work_dir`); returns it."""
    problem = server_venv_problem(venv)
    if problem:
        raise TritonServerError(problem)
    dist = _dist_dir(venv)
    assert dist is not None
    tag = hashlib.sha256(str(dist.resolve()).encode()).hexdigest()[:8]  # one tree per server venv
    target = work_dir / f"tritonserver-py{_python_version(venv)}-{tag}"
    stub_target = target / "backends" / "python" / "triton_python_backend_stub"
    if not stub_target.is_file():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(dist, partial, ignore=shutil.ignore_patterns("python_backend_stubs", "__pycache__"))
        shutil.copy2(_stub(venv, dist), partial / "backends" / "python" / "triton_python_backend_stub")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TritonServer:
    """One tritonserver process serving `repository` on localhost (gRPC, HTTP and metrics ports).

    Args:
        repository: a model repository (serving/triton_repository.py).
        venv: the server venv (default: server_venv()).
        work_dir: where the server tree is prepared and the log written (default build/triton).
        ready_timeout_s: how long start() waits for every model to be ready.
    """

    def __init__(self, repository: str | os.PathLike, venv: str | os.PathLike | None = None,
                 work_dir: str | os.PathLike | None = None, ready_timeout_s: float = 60.0) -> None:
        self.repository = Path(repository).resolve()
        self.venv = server_venv(venv)
        self.work_dir = Path(work_dir or REPO_ROOT / "build" / "triton")
        self.ready_timeout_s = ready_timeout_s
        self.grpc_port = self.http_port = self.metrics_port = 0
        self.process: subprocess.Popen | None = None
        self.log_path = self.work_dir / f"tritonserver-{os.getpid()}-{id(self):x}.log"
        self.startup_s = float("nan")

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> TritonServer:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        tree = prepare_server(self.venv, self.work_dir)
        env = os.environ.copy()
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '')}"
        site_packages = self.venv / "lib" / f"python{_python_version(self.venv)}" / "site-packages"
        libs = [_libdir(self.venv), str(site_packages / "nvidia_pytriton.libs")]
        env["LD_LIBRARY_PATH"] = ":".join(libs + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []))
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        cmd = [
            str(tree / "bin" / "tritonserver"), f"--model-repository={self.repository}",
            f"--backend-directory={tree / 'backends'}", f"--grpc-port={self.grpc_port}",
            f"--http-port={self.http_port}", f"--metrics-port={self.metrics_port}", "--allow-metrics=true",
            "--allow-gpu-metrics=false", "--log-verbose=0", "--exit-on-error=true", "--strict-model-config=true",
        ]
        start = time.monotonic()
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        finally:
            log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - start
        return self

    def _wait_ready(self) -> None:
        import tritonclient.grpc as grpcclient

        deadline = time.monotonic() + self.ready_timeout_s
        client = grpcclient.InferenceServerClient(self.grpc_url)
        try:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise TritonServerError(f"tritonserver exited with {self.process.returncode}: {self.log_tail()}")
                try:
                    if client.is_server_ready(client_timeout=1.0):
                        return
                except Exception:
                    pass
                time.sleep(0.1)
        finally:
            client.close()
        raise TritonServerError(f"tritonserver not ready within {self.ready_timeout_s} s: {self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (Triton unloads its models), SIGKILL after `timeout_s`. Idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process.returncode == 0 and self.startup_s == self.startup_s:  # started and stopped cleanly
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def read_metrics(url: str, timeout_s: float = 5.0) -> dict[tuple[str, str], float]:
    """Prometheus metrics of a server: {(metric, model): value} for series labelled with a model
    (e.g. ("nv_inference_count", "trunk"): requests, ("nv_inference_exec_count", "trunk"): batches run)."""
    import re
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        text = response.read().decode()
    values: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = re.match(r'^(\w+)\{([^}]*)\}\s+(\S+)$', line)
        if not match:
            continue
        model = re.search(r'model="([^"]*)"', match.group(2))
        if model:
            key = (match.group(1), model.group(1))
            values[key] = values.get(key, 0.0) + float(match.group(3))
    return values
