//! `docker import --change`: the Dockerfile instructions that may change an image's config
//! (`CMD`, `ENTRYPOINT`, `ENV`, `WORKDIR`, `USER`, `LABEL`, `EXPOSE`, `VOLUME`, `STOPSIGNAL`,
//! `ONBUILD`, `HEALTHCHECK`), read as dockerd reads them: the changes joined into one Dockerfile, quotes and
//! `$VAR` substitution as in its shell lexer, JSON or shell form for commands.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use api_types::duration::parse_go_duration;
use api_types::ContainerConfig;

use super::error::ImageError;

/// Instructions a Dockerfile has that `--change` does not take.
const NOT_CHANGES: [&str; 8] = [
    "ADD",
    "ARG",
    "COPY",
    "FROM",
    "HEALTHCHECK",
    "MAINTAINER",
    "RUN",
    "SHELL",
];

/// Applies `changes` to `config` in order.
pub(crate) fn apply(config: &mut ContainerConfig, changes: &[String]) -> Result<(), ImageError> {
    apply_with(config, changes, &[])
}

/// [`apply`], with `extra` (`NAME=value`, a build's ARGs) also substituted where the
/// config's own environment does not set the name; they do not become part of it.
pub(crate) fn apply_with(
    config: &mut ContainerConfig,
    changes: &[String],
    extra: &[String],
) -> Result<(), ImageError> {
    let text = changes.join("\n");
    let mut cmd_set = false;
    for (line, instruction) in logical_lines(&text) {
        let fail = |message: String| ImageError::Change { line, message };
        let (keyword, args) = match instruction.split_once(char::is_whitespace) {
            Some((k, rest)) => (k, rest.trim()),
            None => (instruction.as_str(), ""),
        };
        let keyword = keyword.to_ascii_uppercase();
        let own_env = config.env.clone().unwrap_or_default();
        let mut env = extra.to_vec();
        env.extend(own_env.iter().cloned());
        match keyword.as_str() {
            "CMD" => {
                config.cmd = Some(command(args, &keyword).map_err(fail)?);
                cmd_set = true;
            }
            "ENTRYPOINT" => {
                config.entrypoint = Some(command(args, &keyword).map_err(fail)?);
                // As in a Dockerfile, a new entrypoint drops an inherited CMD.
                if !cmd_set {
                    config.cmd = None;
                }
            }
            "ENV" => {
                let mut vars = own_env;
                for (key, value) in pairs(args, &keyword, &env).map_err(fail)? {
                    let prefix = format!("{key}=");
                    let entry = format!("{key}={value}");
                    match vars
                        .iter_mut()
                        .find(|v| v.starts_with(&prefix) || **v == key)
                    {
                        Some(existing) => *existing = entry,
                        None => vars.push(entry),
                    }
                }
                config.env = Some(vars);
            }
            "LABEL" => {
                let labels = config.labels.get_or_insert_with(BTreeMap::new);
                for (key, value) in pairs(args, &keyword, &env).map_err(fail)? {
                    labels.insert(key, value);
                }
            }
            "WORKDIR" => {
                let dir = single_word(args, &keyword, &env).map_err(fail)?;
                let base = if config.working_dir.is_empty() {
                    "/"
                } else {
                    &config.working_dir
                };
                config.working_dir = clean_abs(&Path::new("/").join(base).join(dir));
            }
            "USER" => config.user = single_word(args, &keyword, &env).map_err(fail)?,
            "EXPOSE" => {
                let ports = words(args, &env, true).map_err(fail)?;
                if ports.is_empty() {
                    return Err(fail("EXPOSE requires at least one argument".into()));
                }
                let exposed = config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for spec in ports {
                    for port in port_keys(&spec).map_err(fail)? {
                        exposed.insert(port, serde_json::json!({}));
                    }
                }
            }
            "VOLUME" => {
                let paths = match json_array(args) {
                    Some(paths) => paths,
                    None => words(args, &env, true).map_err(fail)?,
                };
                if paths.is_empty() {
                    return Err(fail("VOLUME requires at least one argument".into()));
                }
                let volumes = config.volumes.get_or_insert_with(BTreeMap::new);
                for path in paths {
                    let path = path.trim();
                    if path.is_empty() {
                        return Err(fail("VOLUME specified can not be an empty string".into()));
                    }
                    volumes.insert(path.to_string(), serde_json::json!({}));
                }
            }
            "STOPSIGNAL" => {
                let signal = single_word(args, &keyword, &env).map_err(fail)?;
                if crate::process::signal_number(&signal).is_none() {
                    return Err(fail(format!("Invalid signal: {signal}")));
                }
                config.stop_signal = Some(signal);
            }
            "HEALTHCHECK" => config.healthcheck = Some(healthcheck(args).map_err(fail)?),
            "ONBUILD" => {
                let trigger = args
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                match trigger.as_str() {
                    "" => return Err(fail("ONBUILD requires at least one argument".into())),
                    "HEALTHCHECK" => config.healthcheck = Some(healthcheck(args).map_err(fail)?),
                    "ONBUILD" => {
                        return Err(fail(
                            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                        ))
                    }
                    "FROM" | "MAINTAINER" => {
                        return Err(fail(format!(
                            "{trigger} isn't allowed as an ONBUILD trigger"
                        )))
                    }
                    _ => config
                        .on_build
                        .get_or_insert_with(Vec::new)
                        .push(args.to_string()),
                }
            }
            k if NOT_CHANGES.contains(&k) => {
                return Err(fail(format!("{k} is not a valid change command")))
            }
            k => return Err(fail(format!("unknown instruction: {k}"))),
        }
    }
    Ok(())
}

/// The Dockerfile's instructions with their line numbers: blank lines and comments skipped,
/// lines ending in `\` continued.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if current.is_none() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        let (start, mut acc) = current.take().unwrap_or((i + 1, String::new()));
        match line.strip_suffix('\\') {
            Some(head) => {
                acc.push_str(head);
                current = Some((start, acc));
            }
            None => {
                acc.push_str(line);
                out.push((start, acc));
            }
        }
    }
    out.extend(current);
    out
}

/// `CMD`/`ENTRYPOINT`: a JSON array of strings (exec form), else `/bin/sh -c` (shell form).
fn command(args: &str, keyword: &str) -> Result<Vec<String>, String> {
    if let Some(exec) = json_array(args) {
        return Ok(exec);
    }
    if args.is_empty() {
        return Err(format!("{keyword} requires at least one argument"));
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), args.into()])
}

fn json_array(args: &str) -> Option<Vec<String>> {
    if args.starts_with('[') {
        serde_json::from_str(args).ok()
    } else {
        None
    }
}

/// `ENV`/`LABEL` arguments: `k=v k2="v 2"`, or the legacy `k some value`.
pub(crate) fn pairs(
    args: &str,
    keyword: &str,
    env: &[String],
) -> Result<Vec<(String, String)>, String> {
    let first = args.split_whitespace().next().unwrap_or("");
    if first.is_empty() {
        return Err(format!("{keyword} requires at least one argument"));
    }
    if !first.contains('=') {
        let value = args[first.len()..].trim();
        if value.is_empty() {
            return Err(format!("{keyword} must have two arguments"));
        }
        let value = words(value, env, false)?.concat();
        return Ok(vec![(first.to_string(), value)]);
    }
    words(args, env, true)?
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some(("", _)) => Err(format!("{keyword} names can not be blank")),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!(
                "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
            )),
        })
        .collect()
}

fn single_word(args: &str, keyword: &str, env: &[String]) -> Result<String, String> {
    match words(args, env, true)?.as_slice() {
        [one] if !one.is_empty() => Ok(one.clone()),
        _ => Err(format!("{keyword} requires exactly one argument")),
    }
}

/// Splits (when `split`) on unquoted whitespace, removes quotes and backslash escapes and
/// substitutes `$VAR` / `${VAR}` from `env`, as dockerd's shell lexer does.
pub(crate) fn words(s: &str, env: &[String], split: bool) -> Result<Vec<String>, String> {
    let lookup = |name: &str| -> String {
        env.iter()
            .rev()
            .find_map(|kv| {
                kv.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('='))
            })
            .unwrap_or("")
            .to_string()
    };
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() && split => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
                i += 1;
                continue;
            }
            '\\' => {
                if let Some(&next) = chars.get(i + 1) {
                    word.push(next);
                    i += 1;
                }
            }
            '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '\'')
                    .ok_or("unexpected end of statement while looking for matching single-quote")?;
                word.extend(&chars[i + 1..i + 1 + end]);
                i += end + 1;
            }
            '"' => {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(
                            "unexpected end of statement while looking for matching double-quote"
                                .into(),
                        ),
                        Some('"') => break,
                        Some('\\') if matches!(chars.get(i + 1), Some('"' | '\\' | '$')) => {
                            word.push(chars[i + 1]);
                            i += 2;
                        }
                        Some('$') => i = substitute(&chars, i, &mut word, &lookup),
                        Some(&c) => {
                            word.push(c);
                            i += 1;
                        }
                    }
                }
            }
            '$' => {
                in_word = true;
                i = substitute(&chars, i, &mut word, &lookup);
                continue;
            }
            c => word.push(c),
        }
        in_word = true;
        i += 1;
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

/// Substitutes the variable at `chars[i] == '$'`; returns the index after it.
fn substitute(
    chars: &[char],
    i: usize,
    word: &mut String,
    lookup: &dyn Fn(&str) -> String,
) -> usize {
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if chars.get(i + 1) == Some(&'{') {
        // The matching `}`, past nested `${…}` in a modifier's word.
        let mut depth = 0usize;
        let mut end = None;
        let mut j = i + 2;
        while j < chars.len() {
            match chars[j] {
                '{' if chars.get(j.wrapping_sub(1)) == Some(&'$') => depth += 1,
                '}' if depth == 0 => {
                    end = Some(j);
                    break;
                }
                '}' => depth -= 1,
                _ => {}
            }
            j += 1;
        }
        if let Some(end) = end {
            let inner: String = chars[i + 2..end].iter().collect();
            let name_len = inner.chars().take_while(|&c| name_char(c)).count();
            let (name, modifier) = inner.split_at(name_len);
            let value = lookup(name);
            let set = !value.is_empty();
            // dockerd's shell lexer: `:-`/`-` default, `:+`/`+` alternative (set meaning
            // set and not empty; berth does not tell unset from empty).
            let expand = |w: &str| -> String {
                let wc: Vec<char> = w.chars().collect();
                let mut out = String::new();
                let mut k = 0;
                while k < wc.len() {
                    if wc[k] == '$' {
                        k = substitute(&wc, k, &mut out, lookup);
                    } else {
                        out.push(wc[k]);
                        k += 1;
                    }
                }
                out
            };
            let shown = match modifier {
                "" => value,
                m if m.starts_with(":-") => {
                    if set {
                        value
                    } else {
                        expand(&m[2..])
                    }
                }
                m if m.starts_with(":+") => {
                    if set {
                        expand(&m[2..])
                    } else {
                        String::new()
                    }
                }
                m if m.starts_with('-') => {
                    if set {
                        value
                    } else {
                        expand(&m[1..])
                    }
                }
                m if m.starts_with('+') => {
                    if set {
                        expand(&m[1..])
                    } else {
                        String::new()
                    }
                }
                _ => value,
            };
            word.push_str(&shown);
            return end + 1;
        }
    }
    let len = chars[i + 1..].iter().take_while(|&&c| name_char(c)).count();
    if len == 0 {
        word.push('$');
        return i + 1;
    }
    let name: String = chars[i + 1..i + 1 + len].iter().collect();
    word.push_str(&lookup(&name));
    i + 1 + len
}

/// `80`, `80/udp`, `8000-8002/tcp` → `80/tcp`, `80/udp`, `8000/tcp`, …
fn port_keys(spec: &str) -> Result<Vec<String>, String> {
    let (range, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(format!("invalid proto: {proto}"));
    }
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {spec}"))
    };
    let (start, end) = match range.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(range)?, port(range)?),
    };
    if end < start {
        return Err(format!("invalid containerPort: {spec}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D]
/// [--start-interval=D] [--retries=N] CMD …`, as the `Healthcheck` object of a config
/// (durations in nanoseconds, zero values left out).
fn healthcheck(args: &str) -> Result<serde_json::Value, String> {
    let mut rest = args;
    let mut check = serde_json::Map::new();
    while let Some(flag) = rest.strip_prefix("--") {
        let (option, after) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
        rest = after.trim_start();
        let (name, value) = option
            .split_once('=')
            .ok_or_else(|| format!("flag needs an argument: --{option}"))?;
        let key = match name {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => {
                let retries: u32 = value
                    .parse()
                    .map_err(|_| format!("invalid argument {value:?} for --retries"))?;
                if retries > 0 {
                    check.insert("Retries".into(), retries.into());
                }
                continue;
            }
            _ => return Err(format!("Unknown flag: {name}")),
        };
        let nanos = parse_go_duration(value)
            .map(|d| d.as_nanos() as i64)
            .ok_or_else(|| format!("time: invalid duration {value:?}"))?;
        if nanos != 0 && nanos < 1_000_000 {
            return Err(format!("{key} \"--{name}\" cannot be less than 1ms"));
        }
        if nanos > 0 {
            check.insert(key.into(), nanos.into());
        }
    }
    let (kind, command_args) = match rest.split_once(char::is_whitespace) {
        Some((kind, cmd)) => (kind.to_ascii_uppercase(), cmd.trim()),
        None => (rest.to_ascii_uppercase(), ""),
    };
    let test: Vec<String> = match kind.as_str() {
        "NONE" if command_args.is_empty() && check.is_empty() => vec!["NONE".into()],
        "NONE" => return Err("HEALTHCHECK NONE takes no arguments".into()),
        "CMD" => match json_array(command_args) {
            Some(exec) => std::iter::once("CMD".to_string()).chain(exec).collect(),
            None if command_args.is_empty() => {
                return Err("Missing command after HEALTHCHECK CMD".into())
            }
            None => vec!["CMD-SHELL".into(), command_args.into()],
        },
        "" => return Err("HEALTHCHECK requires at least one argument".into()),
        other => return Err(format!("Unknown type {other:?} in HEALTHCHECK (try CMD)")),
    };
    check.insert("Test".into(), test.into());
    Ok(serde_json::Value::Object(check))
}

/// Lexically cleans an absolute path (`/a/./b/../c` → `/a/c`).
fn clean_abs(path: &Path) -> String {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Result<ContainerConfig, ImageError> {
        let mut c = ContainerConfig::default();
        apply(
            &mut c,
            &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        Ok(c)
    }

    fn strings(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn commands_in_json_and_shell_form() {
        let c = applied(&[r#"CMD ["sh", "-c", "echo hi"]"#]).unwrap();
        assert_eq!(c.cmd, strings(&["sh", "-c", "echo hi"]));
        let c = applied(&["cmd echo $HOME"]).unwrap();
        assert_eq!(c.cmd, strings(&["/bin/sh", "-c", "echo $HOME"]));
        let c = applied(&["ENTRYPOINT /bin/app --flag", "CMD [\"x\"]"]).unwrap();
        assert_eq!(c.entrypoint, strings(&["/bin/sh", "-c", "/bin/app --flag"]));
        assert_eq!(c.cmd, strings(&["x"]));
        let c = applied(&["CMD [\"x\"]", "ENTRYPOINT [\"e\"]"]).unwrap();
        assert_eq!(c.cmd, strings(&["x"]), "a CMD of the same changes stays");
        let c = applied(&["ENTRYPOINT []"]).unwrap();
        assert_eq!(c.entrypoint, Some(vec![]));
    }

    #[test]
    fn env_and_labels_with_quotes_and_variables() {
        let c = applied(&[
            "ENV PATH=/usr/bin:/bin HOME=/root",
            r#"ENV GREETING="hello world" QUOTED='a $b' ESC=a\ b"#,
            "ENV PATH=$PATH:/opt/bin",
            "ENV LEGACY some value here",
            "ENV BRACED=${HOME}/x",
        ])
        .unwrap();
        assert_eq!(
            c.env,
            strings(&[
                "PATH=/usr/bin:/bin:/opt/bin",
                "HOME=/root",
                "GREETING=hello world",
                "QUOTED=a $b",
                "ESC=a b",
                "LEGACY=some value here",
                "BRACED=/root/x",
            ])
        );
        let c = applied(&[r#"LABEL a=1 "b c"=2"#, "LABEL version 1.0"]).unwrap();
        let labels = c.labels.unwrap();
        assert_eq!(labels["a"], "1");
        assert_eq!(labels["b c"], "2");
        assert_eq!(labels["version"], "1.0");
    }

    #[test]
    fn workdir_user_expose_volume_stopsignal_onbuild() {
        let c = applied(&[
            "WORKDIR /srv",
            "WORKDIR app/../data",
            "USER berth:berth",
            "EXPOSE 80 53/udp 8000-8001",
            r#"VOLUME ["/data", "/logs"]"#,
            "VOLUME /cache",
            "STOPSIGNAL SIGINT",
            "ONBUILD RUN echo hi",
        ])
        .unwrap();
        assert_eq!(c.working_dir, "/srv/data");
        assert_eq!(c.user, "berth:berth");
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
        let volumes: Vec<_> = c.volumes.unwrap().into_keys().collect();
        assert_eq!(volumes, ["/cache", "/data", "/logs"]);
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(c.on_build, strings(&["RUN echo hi"]));
        for ok in ["TERM", "9", "sigkill", "SIGRTMIN+3"] {
            assert!(applied(&[&format!("STOPSIGNAL {ok}")]).is_ok(), "{ok}");
        }
    }

    #[test]
    fn healthchecks() {
        let c = applied(&[
            "HEALTHCHECK --interval=30s --timeout=1m30s --retries=3 CMD curl -f http://localhost/",
        ])
        .unwrap();
        assert_eq!(
            c.healthcheck.unwrap(),
            serde_json::json!({"Test": ["CMD-SHELL", "curl -f http://localhost/"], "Interval": 30_000_000_000i64,
                "Timeout": 90_000_000_000i64, "Retries": 3})
        );
        let c = applied(&[r#"HEALTHCHECK --start-period=1.5s CMD ["/bin/check", "-q"]"#]).unwrap();
        assert_eq!(
            c.healthcheck.unwrap(),
            serde_json::json!({"Test": ["CMD", "/bin/check", "-q"], "StartPeriod": 1_500_000_000i64})
        );
        let c = applied(&["HEALTHCHECK NONE"]).unwrap();
        assert_eq!(
            c.healthcheck.unwrap(),
            serde_json::json!({"Test": ["NONE"]})
        );
        let msg = |change: &str| applied(&[change]).unwrap_err().to_string();
        assert!(msg("HEALTHCHECK").contains("requires at least one argument"));
        assert!(msg("HEALTHCHECK --interval=1us CMD x").contains("cannot be less than 1ms"));
        assert!(msg("HEALTHCHECK --interval=soon CMD x").contains("invalid duration"));
        assert!(msg("HEALTHCHECK --bogus=1 CMD x").contains("Unknown flag: bogus"));
        assert!(msg("HEALTHCHECK RUN x").contains("Unknown type \"RUN\" in HEALTHCHECK (try CMD)"));
        assert!(msg("HEALTHCHECK CMD").contains("Missing command after HEALTHCHECK CMD"));
    }

    #[test]
    fn errors_name_the_line_like_docker() {
        let msg = |changes: &[&str]| applied(changes).unwrap_err().to_string();
        assert_eq!(
            msg(&["FOO bar"]),
            "dockerfile parse error line 1: unknown instruction: FOO"
        );
        assert_eq!(
            msg(&["CMD [\"sh\"]", "", "foo"]),
            "dockerfile parse error line 3: unknown instruction: FOO"
        );
        assert_eq!(
            msg(&["RUN make"]),
            "dockerfile parse error line 1: RUN is not a valid change command"
        );
        assert!(msg(&["EXPOSE http"]).contains("invalid containerPort: http"));
        assert!(msg(&["EXPOSE 80/icmp"]).contains("invalid proto: icmp"));
        assert!(msg(&["STOPSIGNAL SIGNOPE"]).contains("Invalid signal: SIGNOPE"));
        assert!(msg(&["ENV =x"]).contains("ENV names can not be blank"));
        assert!(msg(&["ENV a=1 b"]).contains("can't find = in \"b\""));
        assert!(msg(&["ENV"]).contains("ENV requires at least one argument"));
        assert!(msg(&["USER a b"]).contains("USER requires exactly one argument"));
        assert!(msg(&["ENV A=\"open"]).contains("matching double-quote"));
        assert!(msg(&["ONBUILD ONBUILD RUN x"]).contains("Chaining ONBUILD"));
        assert!(msg(&["VOLUME [\"\"]"]).contains("can not be an empty string"));
    }

    #[test]
    fn substitution_modifiers_as_docker() {
        let env = vec!["SET=yes".to_string(), "EMPTY=".to_string()];
        let w = |s: &str| words(s, &env, false).unwrap().join("");
        assert_eq!(w("${SET:-no}"), "yes");
        assert_eq!(w("${UNSET:-no}"), "no");
        assert_eq!(w("${EMPTY:-d}"), "d");
        assert_eq!(w("${SET:+alt}"), "alt");
        assert_eq!(w("${UNSET:+alt}"), "");
        assert_eq!(w("${UNSET:-${SET}}"), "yes");
        assert_eq!(w("a${SET}b"), "ayesb");
        assert_eq!(w("'$SET'"), "$SET");
    }

    #[test]
    fn continuation_lines_and_comments() {
        let c = applied(&["# a comment\nENV A=1 \\\n  B=2", "CMD echo \\\n done"]).unwrap();
        assert_eq!(c.env, strings(&["A=1", "B=2"]));
        assert_eq!(c.cmd, strings(&["/bin/sh", "-c", "echo done"]));
        assert_eq!(logical_lines("\n\nFOO\n"), vec![(3, "FOO".to_string())]);
    }
}
