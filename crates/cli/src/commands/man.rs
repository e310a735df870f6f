//! `kopi-docka admin man [DIR]`: man pages generated from the clap definition: kopi-docka(1)
//! and one page per subcommand (`kopi-docka-admin-repo-init(1)`), as `git` and `cargo` name
//! theirs.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::CommandFactory as _;
use serde::Serialize;

use crate::cli::{Cli, ManArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::render::Render;

/// Prints kopi-docka(1), or writes every page into the directory.
pub fn run(args: &ManArgs, printer: &Printer) -> anyhow::Result<ExitCode> {
    let pages = pages()?;
    let Some(dir) = &args.dir else {
        // The top-level page comes last (children first).
        let (_, roff) = pages.last().context("no man page generated")?;
        printer.out(&String::from_utf8_lossy(roff));
        return Ok(ExitCode::Ok);
    };
    kopi_docka_core::durable::create_dir_all(dir, 0o755)
        .with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, roff) in &pages {
        let path = dir.join(name);
        kopi_docka_core::durable::write_file(&path, roff, 0o644)
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    printer.report(&ManPages {
        dir: dir.clone(),
        pages: written,
    })?;
    Ok(ExitCode::Ok)
}

/// Every page as (file name, roff): each subcommand's, then kopi-docka(1).
pub fn pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, out)?;
        }
        let man = clap_mangen::Man::new(cmd);
        let mut roff = Vec::new();
        man.render(&mut roff)?;
        out.push((man.get_filename(), roff));
        Ok(())
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(cmd, &mut out).context("rendering the man pages")?;
    Ok(out)
}

/// The pages `admin man DIR` wrote.
#[derive(Serialize)]
struct ManPages {
    /// The directory.
    dir: PathBuf,
    /// Every page written, kopi-docka.1 last.
    pages: Vec<PathBuf>,
}

impl Render for ManPages {
    fn human(&self) -> String {
        let mut out = String::new();
        for page in &self.pages {
            // Writing into a String cannot fail.
            let _ = writeln!(out, "wrote {}", page.display());
        }
        let _ = writeln!(
            out,
            "{} pages; read one with `man -l {}`, or install them into a man1 directory \
             (/usr/local/share/man/man1) and run `mandb`",
            self.pages.len(),
            self.dir.join("kopi-docka.1").display()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::assert_renders;

    #[test]
    fn renders_the_pages_written() {
        assert_renders!(
            "man_pages",
            &ManPages {
                dir: "/tmp/man".into(),
                pages: vec![
                    "/tmp/man/kopi-docka-units.1".into(),
                    "/tmp/man/kopi-docka.1".into()
                ],
            }
        );
    }

    /// A page for every command and subcommand, named after its path.
    #[test]
    fn a_page_for_every_command() {
        let names: Vec<String> = pages().unwrap().into_iter().map(|(n, _)| n).collect();
        for name in [
            "kopi-docka.1",
            "kopi-docka-backup.1",
            "kopi-docka-admin.1",
            "kopi-docka-admin-repo-init.1",
            "kopi-docka-disaster-recovery-import.1",
            "kopi-docka-admin-man.1",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
    }
}
