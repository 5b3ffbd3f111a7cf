"""Builds a Python collector into a cf-host component.

    python -m cloudforet_collector.build collector.py -o my-collector.wasm

1. Reads the collector's identity (`CollectorPluginServer(name=..., version=...)`)
   by importing the module here, natively (`--name` / `--version` override).
2. Writes an entry module that imports the collector and the SDK's WIT edge,
   and runs componentize-py on it against the SDK's copy of
   `cloudforet:collector` (world `plugin`): CPython, the standard library,
   the SDK and the collector, pre-initialized into one component.
3. Appends the `cloudforet-plugin` custom section (`{"name", "version"}`)
   that cf-host's registry reads, so the identity travels inside the file
   (plugins directory, OCI push, admin API) and no manifest can be lost
   beside it. A component's custom sections are free-form and may appear
   anywhere at its top level; nothing else in the file changes.

Needs componentize-py (`pip install 'cloudforet-collector-sdk[build]'`, or
the exact pin in the SDK's requirements.txt). No network is used.
"""

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

SECTION = "cloudforet-plugin"
WORLD = "plugin"
_COMPONENT_HEADER = b"\0asm\x0d\x00\x01\x00"

SDK_SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wit")


def leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def custom_section(name: str, data: bytes) -> bytes:
    """A wasm custom section (id 0): name, then the payload."""
    encoded = name.encode()
    payload = leb128(len(encoded)) + encoded + data
    return b"\x00" + leb128(len(payload)) + payload


def add_identity(component: bytes, name: str, version: str) -> bytes:
    """The component with the `cloudforet-plugin` section appended."""
    if component[:8] != _COMPONENT_HEADER:
        raise ValueError("not a WebAssembly component (expected the component-model header)")
    info = json.dumps({"name": name, "version": version}, separators=(",", ":")).encode()
    return component + custom_section(SECTION, info)


def _leb(buf: bytes, pos: int):
    """An unsigned LEB128 at `pos`: (value, position after it)."""
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def read_identity(component: bytes):
    """The `cloudforet-plugin` section of a component's top level, or None."""
    pos = 8
    while pos < len(component):
        section_id = component[pos]
        size, pos = _leb(component, pos + 1)
        end = pos + size
        if section_id == 0:
            n, p = _leb(component, pos)
            if component[p:p + n].decode(errors="replace") == SECTION:
                return json.loads(component[p + n:end])
        pos = end
    return None


def collector_identity(module_dir: str, module: str):
    """(name, version) of the collector, by importing it here."""
    sys.path[:0] = [module_dir, SDK_SRC]
    sys.dont_write_bytecode = True  # leave no __pycache__ beside the sources
    try:
        importlib.import_module(module)
        from cloudforet_collector.server import current_app

        app = current_app()
        return app.name, app.version
    finally:
        del sys.path[:2]


def componentize_py() -> list:
    exe = shutil.which("componentize-py", path=os.path.dirname(sys.executable)) or shutil.which("componentize-py")
    if exe is None:
        raise SystemExit("componentize-py is not installed: pip install componentize-py==0.25.1")
    return [exe]


def build(source: str, output: str, name: str = None, version: str = None, extra_paths=(), quiet=False) -> dict:
    source = os.path.abspath(source)
    module_dir, file = os.path.split(source)
    module = file[:-3] if file.endswith(".py") else file
    if name is None or version is None:
        found = collector_identity(module_dir, module)
        name = name or found[0]
        version = version or found[1]
    with tempfile.TemporaryDirectory(prefix="cf-collector-build-") as tmp:
        entry = "cf_collector_entry"
        with open(os.path.join(tmp, entry + ".py"), "w") as f:
            f.write(f"import {module}  # noqa: F401 (registers the handlers)\n")
            f.write("from cloudforet_collector._edge import Collector  # noqa: F401 (the export)\n")
        raw = os.path.join(tmp, "component.wasm")
        cmd = componentize_py() + ["-d", WIT_DIR, "-w", WORLD, "componentize", entry, "-p", tmp, "-p", module_dir, "-p", SDK_SRC]
        for p in extra_paths:
            cmd += ["-p", os.path.abspath(p)]
        cmd += ["-o", raw]
        if quiet:
            cmd.insert(1, "-q")
        env = dict(os.environ)
        # Only the paths above go into the component, not the build venv's
        # site-packages (componentize-py adds $VIRTUAL_ENV's otherwise).
        env.pop("VIRTUAL_ENV", None)
        subprocess.run(cmd, check=True, env=env)
        with open(raw, "rb") as f:
            component = add_identity(f.read(), name, version)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output + ".tmp", "wb") as f:
        f.write(component)
    os.replace(output + ".tmp", output)
    return {"name": name, "version": version, "size": len(component), "output": output}


def main(argv=None):
    p = argparse.ArgumentParser(prog="cf-collector-build", description="Build a Python collector into a cf-host component")
    p.add_argument("source", help="the collector module (a .py file)")
    p.add_argument("-o", "--output", required=True, help="the component to write (.wasm)")
    p.add_argument("--name", help="plugin name (default: the CollectorPluginServer's)")
    p.add_argument("--version", help="plugin version, semver (default: the CollectorPluginServer's)")
    p.add_argument("-p", "--python-path", action="append", default=[], help="more directories with modules the collector imports")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    out = build(args.source, args.output, args.name, args.version, args.python_path, args.quiet)
    print(f"built {out['output']}: {out['name']}@{out['version']}, {out['size']} bytes")


if __name__ == "__main__":
    main()
