//! `kopi-docka admin completions SHELL`: the completion script, generated from the clap
//! definition, so it never lags behind the commands.

use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionsArgs, ShellArg};
use crate::exit::ExitCode;
use crate::printer::Printer;

/// Prints the script for the shell asked for.
pub fn run(args: &CompletionsArgs, printer: &Printer) -> ExitCode {
    printer.out(&String::from_utf8_lossy(&script(args.shell)));
    ExitCode::Ok
}

/// The completion script for `shell`.
pub fn script(shell: ShellArg) -> Vec<u8> {
    let shell = match shell {
        ShellArg::Bash => Shell::Bash,
        ShellArg::Zsh => Shell::Zsh,
        ShellArg::Fish => Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kopi-docka", &mut out);
    if shell == Shell::Bash {
        out = fix_bash_labels(&out);
    }
    out
}

/// `clap_complete`'s bash script spells the state of a subcommand two ways when the binary's
/// name has a hyphen (`kopi__docka__subcmd__admin` in the loop that finds it,
/// `kopi__subcmd__docka__subcmd__admin` in the case arms), so nothing past the first word
/// completes (clap-rs/clap#6421). The arms are respelled the way the loop spells them.
fn fix_bash_labels(script: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(script)
        .replace("kopi__subcmd__docka", "kopi__docka")
        .into_bytes()
}
