//! `.dockerignore`: which files of a build context the client leaves out, with Docker's
//! pattern rules (moby's `patternmatcher`).
//!
//! One pattern per line; `#` lines are comments; each pattern is cleaned as a path (a
//! leading `/` and `./` dropped); `*` matches within a name, `?` one character, `[…]` a
//! class, `\` escapes, and a `**` component any number of directories, none included. A
//! pattern that matches a directory matches everything in it. `!` makes an exception; the
//! last pattern that matches a path decides.

/// One pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    exclusion: bool,
    components: Vec<String>,
}

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreMatcher {
    patterns: Vec<Pattern>,
}

impl IgnoreMatcher {
    /// Reads `.dockerignore` text.
    pub fn parse(text: &str) -> Self {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let mut p = line.trim();
            if p.is_empty() || p.starts_with('#') {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
            }
            let cleaned = clean(p);
            if cleaned.is_empty() {
                continue;
            }
            patterns.push(Pattern {
                exclusion,
                components: cleaned.split('/').map(str::to_string).collect(),
            });
        }
        Self { patterns }
    }

    /// Whether any pattern is an exception (then excluded directories must still be walked).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the context path `path` (relative, `/`-separated) is left out.
    pub fn excludes(&self, path: &str) -> bool {
        let path = clean(path);
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let mut excluded = false;
        for p in &self.patterns {
            // The path itself, or one of its parent directories.
            let matched = (1..=comps.len()).any(|n| match_components(&p.components, &comps[..n]));
            if matched {
                excluded = !p.exclusion;
            }
        }
        excluded
    }
}

/// Go's `filepath.Clean`, relative, without a leading `/` or `./`.
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

fn match_components(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_components(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((name, tail)) => glob(first, name) && match_components(rest, tail),
            None => false,
        },
    }
}

/// Go's `filepath.Match` for one name.
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n)
}

fn glob_at(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|i| glob_at(&p[1..], &n[i..])),
        Some('?') => !n.is_empty() && glob_at(&p[1..], &n[1..]),
        Some('[') => {
            let Some(c) = n.first() else { return false };
            let Some(end) = p[1..].iter().position(|&x| x == ']').map(|e| e + 1) else {
                return false;
            };
            let class = &p[1..end];
            let (negate, class) = match class.first() {
                Some('^') | Some('!') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    if class[i] <= *c && *c <= class[i + 2] {
                        hit = true;
                    }
                    i += 3;
                } else {
                    if class[i] == *c {
                        hit = true;
                    }
                    i += 1;
                }
            }
            hit != negate && glob_at(&p[end + 1..], &n[1..])
        }
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && glob_at(&p[2..], &n[1..]),
        Some(c) => n.first() == Some(c) && glob_at(&p[1..], &n[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_rules() {
        let m = IgnoreMatcher::parse(
            "# comment\n*.log\n/build\nnode_modules\n**/*.tmp\ndocs/**\n!docs/keep.md\n./secret?.txt\n",
        );
        assert!(m.excludes("a.log"));
        assert!(!m.excludes("dir/a.log"), "* stays within a name");
        assert!(m.excludes("build/out/x"));
        assert!(m.excludes("node_modules/pkg/index.js"));
        assert!(m.excludes("x.tmp") && m.excludes("a/b/c.tmp"));
        assert!(m.excludes("docs/a.md"));
        assert!(!m.excludes("docs/keep.md"));
        assert!(m.excludes("secret1.txt") && !m.excludes("secret12.txt"));
        assert!(!m.excludes("src/main.rs"));
        assert!(m.has_exceptions());
        let all = IgnoreMatcher::parse("*\n!Dockerfile\n");
        assert!(all.excludes("anything") && !all.excludes("Dockerfile"));
        assert!(glob("[a-c]x", "bx") && !glob("[!a-c]x", "bx") && glob("\\*", "*"));
    }
}
