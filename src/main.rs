fn main() -> std::process::ExitCode {
    sentiq::cli::main()
}
