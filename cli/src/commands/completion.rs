//! `signet completion SHELL`, `signet man`, and `docs/cli.md`: shell completions, man pages and
//! the Markdown reference, all generated from the one clap definition, so none can drift from
//! the flags the binary accepts.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::exit::ExitCode;

/// Arguments of `signet completion`.
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Shells `signet completion` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// bash (source it, or put it in /usr/share/bash-completion/completions/signet).
    Bash,
    /// zsh (put it as `_signet` in a directory on `$fpath`).
    Zsh,
    /// fish (put it in ~/.config/fish/completions/signet.fish).
    Fish,
    /// PowerShell (dot-source it from your profile).
    Powershell,
}

/// Arguments of `signet man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write `signet.1` and one `signet-COMMAND.1` per command into DIR (for example
    /// /usr/local/share/man/man1); without it, `signet.1` goes to stdout.
    #[arg(long, value_name = "DIR", conflicts_with = "markdown")]
    dir: Option<PathBuf>,
    /// Print the Markdown reference of every command instead (docs/cli.md).
    #[arg(long)]
    markdown: bool,
}

/// Write `bytes` to stdout; a reader that went away early (`| head`) is no error.
fn print(bytes: &[u8], what: &str) -> anyhow::Result<ExitCode> {
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).with_context(|| format!("writing {what}"))
        }
        _ => Ok(ExitCode::Success),
    }
}

/// Print the completion script for `args.shell`.
pub fn completion(args: &CompletionArgs, mut command: clap::Command) -> anyhow::Result<ExitCode> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "signet", &mut out);
    print(&out, "the completion script")
}

/// Write the man pages (to `args.dir`, or the top page to stdout).
pub fn man(args: &ManArgs, command: clap::Command) -> anyhow::Result<ExitCode> {
    if args.markdown {
        return print(markdown(command).as_bytes(), "the Markdown reference");
    }
    let command = without_version(command);
    let Some(dir) = &args.dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut out)
            .context("rendering the man page")?;
        return print(&out, "the man page");
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, page) in pages(&command, "signet") {
        let mut out = Vec::new();
        clap_mangen::Man::new(page)
            .title(name.to_uppercase())
            .render(&mut out)
            .context("rendering a man page")?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::Success)
}

/// The command tree with the bare package version: the commit in `--version` changes with every
/// commit, and generated documents must not.
fn without_version(command: clap::Command) -> clap::Command {
    command
        .version(env!("CARGO_PKG_VERSION"))
        .long_version(env!("CARGO_PKG_VERSION"))
}

/// Every command that gets a page, with its page name (`signet-policy-lint`), parents first.
fn pages(command: &clap::Command, name: &str) -> Vec<(String, clap::Command)> {
    pages_of(command, name, "signet")
}

fn pages_of(command: &clap::Command, name: &str, path: &str) -> Vec<(String, clap::Command)> {
    let page = command
        .clone()
        .display_name(name.to_string())
        .bin_name(path.to_string());
    let mut out = vec![(name.to_string(), page)];
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_name = sub.get_name();
        out.extend(pages_of(
            sub,
            &format!("{name}-{sub_name}"),
            &format!("{path} {sub_name}"),
        ));
    }
    out
}

/// `docs/cli.md`: every command, its usage, arguments and options, from the definitions.
pub fn markdown(command: clap::Command) -> String {
    let mut command = without_version(command);
    command.build();
    let mut out = String::from(
        "# `signet` command-line reference\n\n\
         Generated from the clap definitions by `cli/src/commands/completion.rs`; a test\n\
         (`cli_md_is_current`) fails when this file differs from what the code produces. Regenerate\n\
         with `UPDATE_GOLDEN=1 cargo test -p signet-cli --bin signet cli_md_is_current` (or\n\
         `signet man --markdown > docs/cli.md`).\n\n\
         Shell completions: `signet completion bash|zsh|fish|powershell`; man pages:\n\
         `signet man --dir DIR`.\n",
    );
    let dashed: Vec<String> = crate::options::STDIN_FILE_ARGS
        .iter()
        .flat_map(|(cmd, ids)| {
            ids.iter()
                .map(move |id| format!("`{cmd} --{}`", id.replace('_', "-")))
        })
        .collect();
    let _ = write!(
        out,
        "\nA file argument given as `-` is read from stdin (one per command, not with\n\
         `--registry-password-stdin`) for: {}.\n",
        dashed.join(", ")
    );
    write_command(&mut out, &command, "signet", 2);
    out
}

fn write_command(out: &mut String, command: &clap::Command, path: &str, depth: usize) {
    let hashes = "#".repeat(depth.min(6));
    let _ = write!(out, "\n{hashes} `{path}`\n\n");
    if let Some(about) = command.get_long_about().or(command.get_about()) {
        let _ = write!(out, "{}\n\n", about.to_string().trim());
    }
    let usage = command
        .clone()
        .bin_name(path)
        .render_usage()
        .to_string()
        .trim_start_matches("Usage: ")
        .trim()
        .to_string();
    let _ = write!(out, "```text\n{usage}\n```\n");
    let positionals: Vec<&clap::Arg> = command
        .get_positionals()
        .filter(|a| !a.is_hide_set())
        .collect();
    if !positionals.is_empty() {
        out.push_str("\nArguments:\n\n");
        for arg in positionals {
            let name = arg.get_value_names().and_then(|v| v.first()).map_or_else(
                || arg.get_id().to_string().to_uppercase(),
                |v| v.to_string(),
            );
            let _ = writeln!(out, "- `{name}`: {}", help_of(arg));
        }
    }
    let options: Vec<&clap::Arg> = command
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set())
        .filter(|a| depth == 2 || !a.is_global_set())
        .collect();
    if !options.is_empty() {
        out.push_str("\nOptions:\n\n");
        for arg in options {
            let _ = writeln!(out, "- {}: {}", flag_of(arg), help_of(arg));
        }
    }
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        write_command(out, sub, &format!("{path} {}", sub.get_name()), depth + 1);
    }
}

/// `-v, --verbose`, `--timeout <SECS>`.
fn flag_of(arg: &clap::Arg) -> String {
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("-{short}"));
    }
    if let Some(long) = arg.get_long() {
        names.push(format!("--{long}"));
    }
    let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values())
        && !matches!(
            arg.get_action(),
            clap::ArgAction::SetTrue
                | clap::ArgAction::SetFalse
                | clap::ArgAction::Count
                | clap::ArgAction::Help
                | clap::ArgAction::HelpShort
                | clap::ArgAction::HelpLong
                | clap::ArgAction::Version
        );
    let mut text = names.join(", ");
    if takes_value {
        let value = arg.get_value_names().and_then(|v| v.first()).map_or_else(
            || arg.get_id().to_string().to_uppercase(),
            |v| v.to_string(),
        );
        let _ = write!(text, " <{value}>");
    }
    format!("`{text}`")
}

/// The help text, its possible values, default and environment variable.
fn help_of(arg: &clap::Arg) -> String {
    let mut text = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|h| {
            h.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    if !text.is_empty() && !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    let is_flag = matches!(
        arg.get_action(),
        clap::ArgAction::SetTrue | clap::ArgAction::SetFalse | clap::ArgAction::Count
    );
    if !values.is_empty() && !is_flag {
        let _ = write!(text, " Values: {}.", values.join(", "));
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() && !is_flag {
        let _ = write!(text, " Default: `{}`.", defaults.join(","));
    }
    if let Some(env) = arg.get_env() {
        let _ = write!(text, " Environment: `{}`.", env.to_string_lossy());
    }
    text.trim().to_string()
}

// Relative to this file's directory (outside an inline module, so the path resolves).
#[cfg(test)]
#[path = "../../../tests/golden_switch.rs"]
mod golden_switch;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::golden_switch;
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn cli_md_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md");
        golden_switch::check_golden(
            &path,
            &markdown(crate::Cli::command()),
            "cargo test -p signet-cli --bin signet cli_md_is_current",
        );
    }

    #[test]
    fn color_follows_the_flag_then_no_color() {
        use crate::options::color_choice;
        let args = |list: &[&str]| -> Vec<std::ffi::OsString> {
            list.iter().map(std::ffi::OsString::from).collect()
        };
        let set = Some(std::ffi::OsStr::new("1"));
        let empty = Some(std::ffi::OsStr::new(""));
        let check = |list: &[&str], no_color, expected| {
            assert_eq!(color_choice(&args(list), no_color), expected, "{list:?}");
        };
        check(&["signet", "verify"], None, clap::ColorChoice::Auto);
        check(&["signet", "verify"], set, clap::ColorChoice::Never);
        check(&["signet", "verify"], empty, clap::ColorChoice::Auto);
        check(
            &["signet", "--color", "always", "x"],
            set,
            clap::ColorChoice::Always,
        );
        check(
            &["signet", "x", "--color=never"],
            None,
            clap::ColorChoice::Never,
        );
        check(
            &["signet", "--color=never", "--color", "always"],
            None,
            clap::ColorChoice::Always,
        );
        // After `--` it is an operand, not the flag.
        check(
            &["signet", "--", "--color=always"],
            set,
            clap::ColorChoice::Never,
        );
    }

    #[test]
    fn every_stdin_file_argument_exists_and_takes_a_value() {
        let command = crate::Cli::command();
        for (name, ids) in crate::options::STDIN_FILE_ARGS {
            let sub = command
                .find_subcommand(name)
                .unwrap_or_else(|| panic!("no command {name}"));
            for id in *ids {
                let arg = sub
                    .get_arguments()
                    .find(|a| a.get_id() == *id)
                    .unwrap_or_else(|| panic!("{name} has no argument {id}"));
                assert!(
                    arg.get_num_args().is_some_and(|n| n.takes_values())
                        || arg.get_long().is_some(),
                    "{name} {id}"
                );
                assert_eq!(
                    arg.get_long(),
                    Some(id.replace('_', "-").as_str()),
                    "{name} {id}"
                );
            }
        }
    }

    #[test]
    fn every_command_is_documented_and_gets_a_man_page() {
        let command = crate::Cli::command();
        let text = markdown(command.clone());
        let names = pages(&command, "signet");
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = sub.get_name();
            if name == "help" {
                continue;
            }
            assert!(text.contains(&format!("`signet {name}`")), "{name}");
            assert!(
                names.iter().any(|(n, _)| n == &format!("signet-{name}")),
                "{name}"
            );
        }
        // The commit stays out of generated documents (it changes with every commit).
        assert!(!text.contains(env!("SIGNET_COMMIT")) || env!("SIGNET_COMMIT") == "unknown");
    }
}
