//! Files of a store on disk: a listing for failure messages, and writable copies to tamper
//! with (stored objects are read-only, mode 0444).

use std::fs;
use std::path::Path;

/// Every file under `dir` with its size, one per line (hidden names included).
pub fn listing(dir: &Path) -> String {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                let rel = path.strip_prefix(root).unwrap_or(&path);
                out.push(format!("  {} ({size} bytes)", rel.display()));
            }
        }
    }
    let mut lines = Vec::new();
    walk(dir, dir, &mut lines);
    lines.sort();
    format!(
        "--- listing of {} ---\n{}\n",
        dir.display(),
        lines.join("\n")
    )
}

/// Copy a directory tree; the copies are writable.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for e in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let e = e.expect("directory entry");
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).expect("copy file");
            make_writable(&target);
        }
    }
}

/// chmod u+w, so a test can edit a stored (0444) object.
pub fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).expect("metadata").permissions().mode();
    fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o200)).expect("chmod u+w");
}
