"""Run a wasm32-wasip1 program (a test binary) under Wasmtime: cargo's runner for that target.

`cargo xtask test` installs Wasmtime from PyPI (`wasmtime`, pinned in xtask/src/tools.rs) and
sets CARGO_TARGET_WASM32_WASIP1_RUNNER to this script, so `cargo test --target wasm32-wasip1`
runs the filter's unit tests compiled to WebAssembly. Arguments after the program are passed
to it; its exit status is this script's.
"""

import sys

from wasmtime import Engine, ExitTrap, Linker, Module, Store, WasiConfig


def main() -> int:
    program = sys.argv[1]
    engine = Engine()
    linker = Linker(engine)
    linker.define_wasi()
    config = WasiConfig()
    config.argv = [program, *sys.argv[2:]]
    config.inherit_stdout()
    config.inherit_stderr()
    store = Store(engine)
    store.set_wasi(config)
    instance = linker.instantiate(store, Module.from_file(engine, program))
    try:
        instance.exports(store)["_start"](store)
    except ExitTrap as e:
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
