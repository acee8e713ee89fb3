//! The host calls the filter makes on every request, without the SDK's copies.
//!
//! The SDK's `get_property` takes the path as a `Vec<&str>` and serializes it into another
//! allocation on every call, and its `get_map_bytes` copies every header name and value into
//! its own. Here a property path is a constant (`b"response\0code"`), and the header map is
//! handed back as the one buffer the host wrote, read in place by [`crate::pairs`]. Both
//! take ownership of the buffer the host allocated through the SDK's
//! `proxy_on_memory_allocate` (a boxed `[u8]` of exactly `size` bytes), as the SDK does.

/// `WasmResult::Ok`. Results are read as plain integers: an enum would make any other value
/// from the host undefined behaviour.
const OK: u32 = 0;
/// `MapType::HttpRequestHeaders`.
const HTTP_REQUEST_HEADERS: u32 = 0;

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;

    fn proxy_call_foreign_function(
        name_data: *const u8,
        name_size: usize,
        arguments_data: *const u8,
        arguments_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;

    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
}

/// Take the buffer the host allocated for a result.
fn owned(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    // SAFETY: the host filled `data` with a buffer of `size` bytes it obtained from
    // `proxy_on_memory_allocate(size)`, which leaks a boxed `[u8]` of exactly that length;
    // nothing else refers to it.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// A property by its serialized path: the segments joined by NUL bytes, e.g.
/// `b"response\0code"`. `None` when the host has no value.
pub fn property(path: &[u8]) -> Option<Vec<u8>> {
    let mut data = std::ptr::null_mut();
    let mut size = 0;
    // SAFETY: the path is a live slice; the two out-pointers are valid for writes.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    if status == OK {
        owned(data, size)
    } else {
        None
    }
}

/// The request header map, serialized (read it with [`crate::pairs::pairs`]).
pub fn request_header_map() -> Option<Vec<u8>> {
    let mut data = std::ptr::null_mut();
    let mut size = 0;
    // SAFETY: the two out-pointers are valid for writes.
    let status = unsafe { proxy_get_header_map_pairs(HTTP_REQUEST_HEADERS, &mut data, &mut size) };
    if status == OK {
        owned(data, size)
    } else {
        None
    }
}

/// Call a host's foreign function (Envoy's `expr_create`, `expr_evaluate`). `None` when the
/// host has no such function or it failed; unlike the SDK's, this never panics on a status
/// it does not know (a host without foreign functions may answer anything).
pub fn foreign_function(name: &str, arguments: &[u8]) -> Option<Vec<u8>> {
    let mut data = std::ptr::null_mut();
    let mut size = 0;
    // SAFETY: name and arguments are live slices; the two out-pointers are valid for writes.
    let status = unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut data,
            &mut size,
        )
    };
    if status == OK {
        owned(data, size)
    } else {
        None
    }
}
