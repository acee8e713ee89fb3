"""A second proxy-wasm host, written here from the ABI (0.2.1), that offers only the plain ABI.

It loads the audit filter's .wasm with Wasmtime (the `wasmtime` package from PyPI, installed
by `cargo xtask test`) and plays a host such as NGINX's ngx_wasm_module would: request and
response header maps, bodies, the clock, timers, metrics, HTTP calls; but no Envoy property
(every `proxy_get_property` answers NOT_FOUND) and no foreign function (NOT_FOUND too).

It shares no code with the filter or with Envoy. `tests/filter.rs` runs it: it configures the
filter, sends the requests given on stdin as JSON through the filter's callbacks, fires the
filter's timer, answers its HTTP call to the sealer with 200, and prints one JSON object: the
NDJSON lines the filter sent, and every property path and foreign function it asked for.

Input: {"wasm": path, "config": plugin JSON string, "requests": [{"request_headers":
[[name, value], ...], "response_headers": [[name, value], ...], "response_body": n}, ...]}
"""

import json
import struct
import sys

from wasmtime import Engine, FuncType, Linker, Module, Store, ValType, WasiConfig

OK, NOT_FOUND, BAD_ARGUMENT = 0, 1, 2
# proxy-wasm map and buffer types.
REQUEST_HEADERS, RESPONSE_HEADERS, HTTP_CALL_RESPONSE_HEADERS = 0, 2, 6
HTTP_CALL_RESPONSE_BODY, PLUGIN_CONFIGURATION = 4, 7


def serialize_pairs(pairs):
    out = struct.pack("<I", len(pairs))
    for name, value in pairs:
        out += struct.pack("<II", len(name), len(value))
    for name, value in pairs:
        out += name + b"\0" + value + b"\0"
    return out


class Host:
    def __init__(self, wasm, config):
        self.engine = Engine()
        self.store = Store(self.engine)
        wasi = WasiConfig()
        wasi.inherit_stderr()
        self.store.set_wasi(wasi)
        self.linker = Linker(self.engine)
        self.linker.define_wasi()
        self.module = Module.from_file(self.engine, wasm)
        self.config = config.encode()
        self.clock = 1_764_313_200_000_000_000
        # What the current callback may read.
        self.maps = {}
        self.calls = []
        self.properties_asked = []
        self.foreign_asked = []
        self.logs = []
        handlers = {
            "proxy_log": self.log,
            "proxy_get_current_time_nanoseconds": self.now,
            "proxy_set_tick_period_milliseconds": lambda _c, _ms: OK,
            "proxy_get_buffer_bytes": self.get_buffer,
            "proxy_get_header_map_pairs": self.get_pairs,
            "proxy_get_header_map_value": self.get_value,
            "proxy_get_property": self.get_property,
            "proxy_call_foreign_function": self.foreign,
            "proxy_define_metric": self.define_metric,
            "proxy_increment_metric": lambda _c, _id, _offset: OK,
            "proxy_http_call": self.http_call,
            "proxy_done": lambda _c: OK,
            "proxy_set_effective_context": lambda _c, _id: OK,
        }
        for imp in self.module.imports:
            if imp.module != "env":
                continue
            handler = handlers.get(imp.name, self.unsupported(imp.name))
            self.linker.define_func("env", imp.name, imp.type, handler, access_caller=True)
        self.instance = self.linker.instantiate(self.store, self.module)
        self.exports = self.instance.exports(self.store)
        self.memory = self.exports["memory"]

    def unsupported(self, name):
        def handler(_caller, *_args):
            print(f"plain host: {name} is not offered", file=sys.stderr)
            return NOT_FOUND

        return handler

    # Guest memory.
    def read(self, ptr, size):
        return bytes(self.memory.read(self.store, ptr, ptr + size))

    def give(self, data, ret_ptr, ret_size):
        """Copy `data` into a buffer the guest allocates and store its pointer and size."""
        if data:
            ptr = self.exports["proxy_on_memory_allocate"](self.store, len(data))
            self.memory.write(self.store, data, ptr)
        else:
            ptr = 0
        self.memory.write(self.store, struct.pack("<I", ptr), ret_ptr)
        self.memory.write(self.store, struct.pack("<I", len(data)), ret_size)
        return OK

    # Imports.
    def log(self, _caller, level, ptr, size):
        self.logs.append((level, self.read(ptr, size).decode("utf-8", "replace")))
        return OK

    def now(self, _caller, ret_ptr):
        self.clock += 1_000_000
        self.memory.write(self.store, struct.pack("<Q", self.clock), ret_ptr)
        return OK

    def get_buffer(self, _caller, kind, start, max_size, ret_ptr, ret_size):
        data = {PLUGIN_CONFIGURATION: self.config}.get(kind, self.maps.get(("buffer", kind)))
        if data is None:
            return NOT_FOUND
        # Sizes are unsigned 32-bit in the ABI (Wasmtime hands them over as signed).
        start, max_size = start & 0xFFFFFFFF, max_size & 0xFFFFFFFF
        return self.give(data[start : start + max_size], ret_ptr, ret_size)

    def get_pairs(self, _caller, kind, ret_ptr, ret_size):
        pairs = self.maps.get(kind)
        if pairs is None:
            return NOT_FOUND
        return self.give(serialize_pairs(pairs), ret_ptr, ret_size)

    def get_value(self, _caller, kind, key_ptr, key_size, ret_ptr, ret_size):
        key = self.read(key_ptr, key_size).lower()
        for name, value in self.maps.get(kind, []):
            if name == key:
                return self.give(value, ret_ptr, ret_size)
        return NOT_FOUND

    def get_property(self, _caller, path_ptr, path_size, _ret_ptr, _ret_size):
        self.properties_asked.append(self.read(path_ptr, path_size).decode().replace("\0", "."))
        return NOT_FOUND

    def foreign(self, _caller, name_ptr, name_size, _arg_ptr, _arg_size, _ret_ptr, _ret_size):
        self.foreign_asked.append(self.read(name_ptr, name_size).decode())
        return NOT_FOUND

    def define_metric(self, _caller, _kind, _name_ptr, _name_size, ret_id):
        self.memory.write(self.store, struct.pack("<I", 1), ret_id)
        return OK

    def http_call(self, _caller, up_ptr, up_size, h_ptr, h_size, b_ptr, b_size, _t_ptr, _t_size, _timeout, ret_token):
        data = self.read(h_ptr, h_size)
        (count,) = struct.unpack_from("<I", data, 0)
        sizes = [struct.unpack_from("<II", data, 4 + 8 * i) for i in range(count)]
        at, headers = 4 + 8 * count, {}
        for name_len, value_len in sizes:
            name = data[at : at + name_len].decode()
            at += name_len + 1
            headers[name] = data[at : at + value_len].decode()
            at += value_len + 1
        self.calls.append({"cluster": self.read(up_ptr, up_size).decode(), "headers": headers, "body": self.read(b_ptr, b_size).decode()})
        self.memory.write(self.store, struct.pack("<I", len(self.calls)), ret_token)
        return OK

    # Driving the filter.
    def call(self, name, *args):
        return self.exports[name](self.store, *args)

    def run(self, requests):
        self.call("_initialize")
        self.call("proxy_on_context_create", 1, 0)
        assert self.call("proxy_on_vm_start", 1, 0) == 1, "the VM refused to start"
        assert self.call("proxy_on_configure", 1, len(self.config)) == 1, f"configuration refused: {self.logs}"
        for i, r in enumerate(requests):
            ctx = 2 + i
            enc = lambda pairs: [(n.encode(), v.encode()) for n, v in pairs]
            self.call("proxy_on_context_create", ctx, 1)
            self.maps = {REQUEST_HEADERS: enc(r["request_headers"])}
            self.call("proxy_on_request_headers", ctx, len(r["request_headers"]), 1)
            self.maps[RESPONSE_HEADERS] = enc(r["response_headers"])
            self.call("proxy_on_response_headers", ctx, len(r["response_headers"]), 0)
            self.call("proxy_on_response_body", ctx, r["response_body"], 1)
            self.call("proxy_on_log", ctx)
            self.call("proxy_on_done", ctx)
            self.call("proxy_on_delete", ctx)
            self.maps = {}
        sent = 0
        while True:
            self.call("proxy_on_tick", 1)
            if len(self.calls) == sent:
                break
            sent = len(self.calls)
            self.maps = {HTTP_CALL_RESPONSE_HEADERS: [(b":status", b"200")], ("buffer", HTTP_CALL_RESPONSE_BODY): b"{}"}
            self.call("proxy_on_http_call_response", 1, sent, 1, 2, 0)
            self.maps = {}
        lines = [line for call in self.calls for line in call["body"].splitlines() if line]
        return {
            "lines": lines,
            "calls": self.calls,
            "properties_asked": self.properties_asked,
            "foreign_asked": self.foreign_asked,
            "logs": self.logs,
        }


def main():
    spec = json.load(sys.stdin)
    host = Host(spec["wasm"], spec["config"])
    print(json.dumps(host.run(spec["requests"])))


if __name__ == "__main__":
    main()
