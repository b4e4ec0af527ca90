//! One replica of the service, started by the race-condition scenario's tests.
fn main() -> std::process::ExitCode {
    race_condition::replica_main(std::env::args().skip(1).collect())
}
