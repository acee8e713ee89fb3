//! `sealer`: see the crate documentation of the `sealer` library.

fn main() -> std::process::ExitCode {
    sealer::commands::main()
}
