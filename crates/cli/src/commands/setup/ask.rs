//! The questions of `setup`: each one answered by its flag, else asked on the terminal, else
//! (with `--non-interactive`) its default or a usage error naming the flag.

use std::fmt::Write as _;

use anyhow::bail;

use crate::commands::UsageError;
use crate::printer::Printer;

/// Asks on the terminal, or not at all.
pub struct Asker<'a> {
    /// Where questions are written.
    pub printer: &'a Printer,
    /// Whether questions may be asked.
    pub interactive: bool,
}

impl Asker<'_> {
    /// `flag`'s value; else the answer to `question` (empty: `default`); else `default`.
    pub fn text(
        &self,
        flag: Option<&str>,
        question: &str,
        default: &str,
    ) -> anyhow::Result<String> {
        if let Some(value) = flag {
            return Ok(value.to_owned());
        }
        if !self.interactive {
            return Ok(default.to_owned());
        }
        let shown = if default.is_empty() {
            format!("{question}:")
        } else {
            format!("{question} [{default}]:")
        };
        match self.printer.ask(&shown) {
            Some(a) if a.is_empty() => Ok(default.to_owned()),
            Some(a) => Ok(a),
            None => bail!(UsageError("no answer on stdin; nothing was written".into())),
        }
    }

    /// Like [`Asker::text`], but an answer is needed: without a terminal the flag must be given.
    pub fn required(
        &self,
        flag: Option<&str>,
        flag_name: &str,
        question: &str,
    ) -> anyhow::Result<String> {
        if flag.is_none() && !self.interactive {
            bail!(UsageError(format!(
                "{flag_name} is needed with --non-interactive ({question})"
            )));
        }
        loop {
            let answer = self.text(flag, question, "")?;
            if !answer.trim().is_empty() {
                return Ok(answer.trim().to_owned());
            }
            self.printer.notice("  an answer is needed here");
        }
    }

    /// A secret typed without echo (never taken from argv); `None` for an empty answer.
    pub fn secret(&self, question: &str) -> anyhow::Result<Option<String>> {
        if !self.interactive {
            return Ok(None);
        }
        match self.printer.ask_secret(&format!("{question} (not shown):")) {
            Some(a) => {
                let a = a.trim_end_matches(['\n', '\r']);
                Ok((!a.is_empty()).then(|| a.to_owned()))
            }
            None => bail!(UsageError("no terminal to read a secret from".into())),
        }
    }

    /// Yes or no: the flag when given, else asked (empty: `default`), else `default`.
    pub fn yes_no(
        &self,
        flag: Option<bool>,
        question: &str,
        default: bool,
    ) -> anyhow::Result<bool> {
        if let Some(value) = flag {
            return Ok(value);
        }
        if !self.interactive {
            return Ok(default);
        }
        loop {
            let shown = if default { "Y/n" } else { "y/N" };
            match self.printer.ask(&format!("{question} [{shown}]:")) {
                Some(a) if a.is_empty() => return Ok(default),
                Some(a) if matches!(a.to_lowercase().as_str(), "y" | "yes") => return Ok(true),
                Some(a) if matches!(a.to_lowercase().as_str(), "n" | "no") => return Ok(false),
                Some(_) => self.printer.notice("  answer yes or no"),
                None => bail!(UsageError("no answer on stdin; nothing was written".into())),
            }
        }
    }

    /// One of `choices` (by number or by its name), shown as a numbered list.
    pub fn choose(
        &self,
        question: &str,
        choices: &[(String, String)],
        default: usize,
    ) -> anyhow::Result<usize> {
        let mut list = String::new();
        for (n, (name, about)) in choices.iter().enumerate() {
            // Writing into a String cannot fail.
            let _ = writeln!(list, "  {:>2}) {name:<10} {about}", n + 1);
        }
        self.printer.notice(list.trim_end());
        loop {
            let answer = self.text(None, question, &(default + 1).to_string())?;
            let picked = answer
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .filter(|n| *n < choices.len())
                .or_else(|| choices.iter().position(|(name, _)| *name == answer));
            match picked {
                Some(n) => return Ok(n),
                None => self.printer.notice(&format!(
                    "  `{answer}`: give a number from 1 to {}",
                    choices.len()
                )),
            }
        }
    }
}
