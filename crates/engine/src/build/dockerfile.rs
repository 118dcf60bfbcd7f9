//! A Dockerfile read into the steps the builder runs.
//!
//! The syntax (directives, the escape character, line continuations, JSON and shell forms,
//! flags, heredocs, stages) is parse-dockerfile's; this module turns its borrowed tree into
//! owned steps, each with its line, the text `Step n/m :` shows and what it does. Variables
//! are not expanded here: that happens as each step runs, with the variables in scope then.

use super::BuildError;

/// A command in exec (JSON) or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

/// A source of `COPY` / `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Path(String),
    /// A heredoc's content (the file it makes).
    HereDoc(String),
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    /// `ARG` with its raw arguments (`NAME[=default] ...`).
    Arg(String),
    Run {
        command: Command,
        /// Heredocs; the first is the script when the command names it.
        heredocs: Vec<String>,
        flags: Vec<(String, Option<String>)>,
    },
    Copy {
        add: bool,
        flags: Vec<(String, Option<String>)>,
        sources: Vec<Source>,
        dest: String,
    },
    /// `CMD` (`entrypoint: false`) or `ENTRYPOINT`.
    Command {
        entrypoint: bool,
        command: Command,
    },
    Shell(Vec<String>),
    Maintainer(String),
    /// An instruction that only changes the config, as a line `--change` takes (`ENV a=b`).
    Config(String),
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Its first line (1-based).
    pub line: usize,
    /// The instruction as written, continuations joined (`Step n/m : <original>`).
    pub original: String,
    pub kind: Kind,
}

/// A stage: its `FROM` and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub from: Step,
    pub steps: Vec<Step>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// `ARG`s before the first `FROM`.
    pub global_args: Vec<Step>,
    pub stages: Vec<Stage>,
    /// Warnings for the build output (`# syntax=` is ignored).
    pub warnings: Vec<String>,
}

fn line_of(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The text of an instruction that starts at `start` and ends before `end`, as dockerd's
/// `Original`: continuations joined, comment lines inside it dropped.
fn original(text: &str, start: usize, end: usize, escape: char) -> String {
    let raw = &text[start..end.min(text.len())];
    let mut out = String::new();
    for (i, line) in raw.lines().enumerate() {
        let t = line.trim();
        if i > 0 && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        let (body, continued) = match line.trim_end().strip_suffix(escape) {
            Some(b) => (b, true),
            None => (line.trim_end(), false),
        };
        if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
        out.push_str(if i == 0 { body.trim_end() } else { body.trim() });
        if !continued {
            break;
        }
    }
    out.trim().to_string()
}

fn flags(options: &[parse_dockerfile::Flag<'_>]) -> Vec<(String, Option<String>)> {
    options
        .iter()
        .map(|f| {
            (
                f.name.value.to_string(),
                f.value.as_ref().map(|v| v.value.to_string()),
            )
        })
        .collect()
}

fn command(c: &parse_dockerfile::Command<'_>) -> Command {
    match c {
        parse_dockerfile::Command::Exec(args) => {
            Command::Exec(args.value.iter().map(|a| a.value.to_string()).collect())
        }
        parse_dockerfile::Command::Shell(s) => Command::Shell(s.value.to_string()),
        #[allow(unreachable_patterns)]
        _ => Command::Shell(String::new()),
    }
}

/// JSON text of a string list, for a config line in exec form.
fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// The step an instruction is, with its text from `start` to `end`.
fn step(
    text: &str,
    inst: &parse_dockerfile::Instruction<'_>,
    start: usize,
    end: usize,
    escape: char,
) -> Result<Step, BuildError> {
    use parse_dockerfile::Instruction as I;
    let original = original(text, start, end, escape);
    let line = line_of(text, start);
    // What follows the keyword, for instructions passed on as config lines.
    let rest = || {
        let o = original.trim_start();
        let cut = o.find(char::is_whitespace).unwrap_or(o.len());
        o[cut..].trim().to_string()
    };
    let keyword = || {
        let o = original.trim_start();
        o[..o.find(char::is_whitespace).unwrap_or(o.len())].to_ascii_uppercase()
    };
    let kind = match inst {
        I::From(f) => Kind::From {
            image: f.image.value.to_string(),
            name: f.as_.as_ref().map(|(_, n)| n.value.to_ascii_lowercase()),
            platform: flags(&f.options)
                .into_iter()
                .find(|(n, _)| n == "platform")
                .and_then(|(_, v)| v),
        },
        I::Arg(a) => Kind::Arg(a.arguments.value.to_string()),
        I::Run(r) => Kind::Run {
            command: command(&r.arguments),
            heredocs: r.here_docs.iter().map(|h| h.value.to_string()).collect(),
            flags: flags(&r.options),
        },
        I::Copy(c) => Kind::Copy {
            add: false,
            flags: flags(&c.options),
            sources: c.src.iter().map(source).collect(),
            dest: c.dest.value.to_string(),
        },
        I::Add(c) => Kind::Copy {
            add: true,
            flags: flags(&c.options),
            sources: c.src.iter().map(source).collect(),
            dest: c.dest.value.to_string(),
        },
        I::Cmd(c) => Kind::Command {
            entrypoint: false,
            command: command(&c.arguments),
        },
        I::Entrypoint(c) => Kind::Command {
            entrypoint: true,
            command: command(&c.arguments),
        },
        I::Shell(s) => Kind::Shell(s.arguments.iter().map(|a| a.value.to_string()).collect()),
        I::Maintainer(m) => Kind::Maintainer(m.name.value.to_string()),
        I::Volume(v) => match &v.arguments {
            parse_dockerfile::JsonOrStringArray::Json(list) => {
                let items: Vec<String> = list.value.iter().map(|a| a.value.to_string()).collect();
                Kind::Config(format!("VOLUME {}", json_list(&items)))
            }
            _ => Kind::Config(format!("VOLUME {}", rest())),
        },
        I::Healthcheck(_)
        | I::Env(_)
        | I::Label(_)
        | I::Expose(_)
        | I::User(_)
        | I::Workdir(_)
        | I::Stopsignal(_)
        | I::Onbuild(_) => Kind::Config(format!("{} {}", keyword(), rest())),
        #[allow(unreachable_patterns)]
        _ => {
            return Err(BuildError::Parse {
                line,
                message: format!("unknown instruction: {}", keyword()),
            })
        }
    };
    Ok(Step {
        line,
        original,
        kind,
    })
}

fn source(s: &parse_dockerfile::Source<'_>) -> Source {
    match s {
        parse_dockerfile::Source::Path(p) => Source::Path(p.value.to_string()),
        parse_dockerfile::Source::HereDoc(h) => Source::HereDoc(h.value.to_string()),
        #[allow(unreachable_patterns)]
        _ => Source::Path(String::new()),
    }
}

fn start_of(inst: &parse_dockerfile::Instruction<'_>) -> usize {
    use parse_dockerfile::Instruction as I;
    match inst {
        I::Add(i) => i.add.span.start,
        I::Arg(i) => i.arg.span.start,
        I::Cmd(i) => i.cmd.span.start,
        I::Copy(i) => i.copy.span.start,
        I::Entrypoint(i) => i.entrypoint.span.start,
        I::Env(i) => i.env.span.start,
        I::Expose(i) => i.expose.span.start,
        I::From(i) => i.from.span.start,
        I::Healthcheck(i) => i.healthcheck.span.start,
        I::Label(i) => i.label.span.start,
        I::Maintainer(i) => i.maintainer.span.start,
        I::Onbuild(i) => i.onbuild.span.start,
        I::Run(i) => i.run.span.start,
        I::Shell(i) => i.shell.span.start,
        I::Stopsignal(i) => i.stopsignal.span.start,
        I::User(i) => i.user.span.start,
        I::Volume(i) => i.volume.span.start,
        I::Workdir(i) => i.workdir.span.start,
        #[allow(unreachable_patterns)]
        _ => 0,
    }
}

/// A parse-dockerfile error in dockerd's words (`dockerfile parse error line 40: unknown
/// instruction: FOO`).
fn parse_error(e: &parse_dockerfile::Error) -> BuildError {
    let msg = format!("{e:#}");
    let message = match msg
        .strip_prefix("unknown instruction '")
        .and_then(|m| m.strip_suffix('\''))
    {
        Some(word) => format!("unknown instruction: {}", word.to_ascii_uppercase()),
        None => msg,
    };
    if e.line() == 0 {
        return BuildError::Invalid { message };
    }
    BuildError::Parse {
        line: e.line(),
        message,
    }
}

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, BuildError> {
    let parsed = parse_dockerfile::parse(text).map_err(|e| parse_error(&e))?;
    let escape = parsed
        .parser_directives
        .escape
        .as_ref()
        .map_or('\\', |d| d.value.value);
    let mut warnings = Vec::new();
    if let Some(syntax) = &parsed.parser_directives.syntax {
        warnings.push(format!(
            "[WARNING]: the syntax directive ({}) is ignored: berth's builder reads the Dockerfile itself",
            syntax.value.value
        ));
    }
    let starts: Vec<usize> = parsed.instructions.iter().map(start_of).collect();
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for (i, inst) in parsed.instructions.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        let s = step(text, inst, starts[i], end, escape)?;
        match (&s.kind, stages.last_mut()) {
            (Kind::From { .. }, _) => stages.push(Stage {
                from: s,
                steps: Vec::new(),
            }),
            (Kind::Arg(_), None) => global_args.push(s),
            (_, None) => {
                return Err(BuildError::Parse {
                    line: s.line,
                    message: "no build stage in current context".into(),
                })
            }
            (_, Some(stage)) => stage.steps.push(s),
        }
    }
    if stages.is_empty() {
        return Err(BuildError::Invalid {
            message: "the Dockerfile (Dockerfile) cannot be empty".into(),
        });
    }
    Ok(Dockerfile {
        global_args,
        stages,
        warnings,
    })
}

/// Parses one `ONBUILD` trigger (an instruction line) into its step.
pub fn parse_trigger(line: &str) -> Result<Step, BuildError> {
    let text = format!("FROM scratch\n{line}\n");
    let df = parse(&text)?;
    df.stages[0]
        .steps
        .first()
        .cloned()
        .ok_or_else(|| BuildError::Invalid {
            message: format!("invalid ONBUILD trigger: {line}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_steps_and_original_text() {
        let df = parse(
            "# syntax=docker/dockerfile:1\nARG BASE=busybox\nFROM $BASE AS build\nRUN echo a \\\n    && echo b\n# comment\nCOPY --from=x --chown=1:2 a b /dst/\n\nfrom build\nCMD [\"sh\", \"-c\", \"echo\"]\nENV A=1 B=\"two words\"\nONBUILD RUN echo hi\n",
        )
        .unwrap();
        assert_eq!(df.warnings.len(), 1);
        assert_eq!(df.global_args.len(), 1);
        assert_eq!(df.stages.len(), 2);
        let s0 = &df.stages[0];
        assert_eq!(
            s0.from.kind,
            Kind::From {
                image: "$BASE".into(),
                name: Some("build".into()),
                platform: None
            }
        );
        assert_eq!(s0.steps[0].original, "RUN echo a && echo b");
        assert_eq!(s0.steps[0].line, 4);
        match &s0.steps[1].kind {
            Kind::Copy {
                add,
                flags,
                sources,
                dest,
            } => {
                assert!(!add);
                assert_eq!(flags[0], ("from".to_string(), Some("x".to_string())));
                assert_eq!(sources.len(), 2);
                assert_eq!(dest, "/dst/");
            }
            k => panic!("{k:?}"),
        }
        let s1 = &df.stages[1];
        assert_eq!(
            s1.steps[0].kind,
            Kind::Command {
                entrypoint: false,
                command: Command::Exec(vec!["sh".into(), "-c".into(), "echo".into()])
            }
        );
        assert_eq!(
            s1.steps[1].kind,
            Kind::Config("ENV A=1 B=\"two words\"".into())
        );
        assert_eq!(s1.steps[2].kind, Kind::Config("ONBUILD RUN echo hi".into()));
    }

    #[test]
    fn errors_name_the_line() {
        let mut text = String::from("FROM busybox\n");
        for _ in 0..38 {
            text.push_str("RUN true\n");
        }
        text.push_str("FOO bar\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "dockerfile parse error line 40: unknown instruction: FOO"
        );
        let e = parse("RUN true\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(parse("").is_err());
    }

    #[test]
    fn heredocs_are_the_script() {
        let df = parse("FROM busybox\nRUN <<EOF\necho one > /here\nEOF\n").unwrap();
        assert_eq!(
            df.stages[0].steps[0].kind,
            Kind::Run {
                command: Command::Shell(String::new()),
                heredocs: vec!["echo one > /here\n".into()],
                flags: Vec::new()
            }
        );
    }

    #[test]
    fn escape_directive_and_triggers() {
        let df = parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\n").unwrap();
        assert_eq!(df.stages[0].steps[0].original, "RUN echo a b");
        let t = parse_trigger("COPY a /b").unwrap();
        assert!(matches!(t.kind, Kind::Copy { .. }));
    }
}
