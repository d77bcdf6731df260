//! `squall`: Squall's command-line tool and daemons. See `squall --help`.

fn main() -> std::process::ExitCode {
    squall_tools::entry::main()
}
