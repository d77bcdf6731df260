//! The `squall` command line, built inside the test package so that the cluster tests can
//! run its daemons and commands as processes.

fn main() -> std::process::ExitCode {
    squall_tools::entry::main()
}
