fn main() -> anyhow::Result<()> {
    passwordsafe_operator::cli::main()
}
