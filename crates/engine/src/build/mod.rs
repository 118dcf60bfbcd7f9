//! Dockerfile builds, as dockerd's classic builder makes them (`POST /build`).
//!
//! The context is unpacked into scratch space (`context`), the Dockerfile parsed
//! (`dockerfile`), and each step of each stage up to the target run in order, each making
//! an image on top of the last one, as the classic builder does:
//!
//! - config-only steps (`ENV`, `LABEL`, `CMD`, `ARG`, …) change the config and add a history
//!   entry with no layer;
//! - `RUN` creates a real container of the current image through the engine's own container
//!   code (same isolation as `run`), streams its output, waits for it and commits its
//!   changes; a non-zero exit fails the build with dockerd's message and the exit code;
//! - `COPY`/`ADD` (and `WORKDIR`, which makes its directory) mount an overlay of the current
//!   image in scratch space, write the files (`copy`) and commit the overlay's upper
//!   directory.
//!
//! The build cache is the intermediate images themselves, as in dockerd: every step's image
//! records its parent and a key (the step as run: its `created_by`, which names COPY's
//! content hash, and the resulting config), and a step whose parent already has a child
//! with that key reuses it (`Using cache`). The store keeps them across restarts of berthd
//! and shares them with daemonless commands; `builder prune` drops the ones no tagged image
//! needs. A failed build leaves its scratch space, mounts and containers behind it removed,
//! and tags nothing; the images of the steps that succeeded stay as cache, as in dockerd.

mod context;
mod copy;
pub mod dockerfile;
pub mod ignore;

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use api_types::{ContainerConfig, ContainerCreateRequest, ProgressMessage};
use tokio::sync::mpsc;

use self::context::Workspace;
use self::dockerfile::{Command, Kind, Source, Step};
use crate::container::changes::INIT_PATHS;
use crate::container::WaitCondition;
use crate::engine::{Engine, EngineError};
use crate::image::{ChildImage, ImageError, Reference, ReferenceError};
use crate::{Caller, ErrorKind};

/// Proxy variables every build may set with `--build-arg` without declaring them (and which
/// stay out of the history).
const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// What a build was asked for (the query of `POST /build`).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The Dockerfile's path in the context.
    pub dockerfile: String,
    /// `repo[:tag]` names to give the image.
    pub tags: Vec<String>,
    /// Build up to this stage.
    pub target: Option<String>,
    /// Only the image ID is reported.
    pub quiet: bool,
    pub no_cache: bool,
    pub pull: bool,
    /// Remove intermediate containers after a successful step (dockerd's default).
    pub remove: bool,
    /// Remove them always, even after a failed step.
    pub force_remove: bool,
    pub labels: BTreeMap<String, String>,
    /// `--build-arg NAME[=value]`; `None` takes the value from the client's environment,
    /// which the client already did, so it means unset here.
    pub build_args: BTreeMap<String, Option<String>>,
    pub platform: Option<String>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            dockerfile: "Dockerfile".into(),
            tags: Vec::new(),
            target: None,
            quiet: false,
            no_cache: false,
            pull: false,
            remove: true,
            force_remove: false,
            labels: BTreeMap::new(),
            build_args: BTreeMap::new(),
            platform: None,
        }
    }
}

/// Why a build failed, in dockerd's words.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("dockerfile parse error line {line}: {message}")]
    Parse { line: usize, message: String },
    /// Bad input: options, Dockerfile content, sources.
    #[error("{message}")]
    Invalid { message: String },
    /// A context tar that cannot be unpacked safely.
    #[error("{message}")]
    Context { message: String },
    /// A base image that is not in the store.
    #[error("{message}")]
    NotFound { message: String },
    /// A `RUN` step exited non-zero.
    #[error("The command '{command}' returned a non-zero code: {code}")]
    Run { command: String, code: i64 },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Engine(Box<EngineError>),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<EngineError> for BuildError {
    fn from(e: EngineError) -> Self {
        Self::Engine(Box::new(e))
    }
}

impl From<ReferenceError> for BuildError {
    fn from(e: ReferenceError) -> Self {
        Self::Image(e.into())
    }
}

impl BuildError {
    /// The kind of failure, for the status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Parse { .. } | Self::Invalid { .. } | Self::Context { .. } => {
                ErrorKind::InvalidArgument
            }
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Run { .. } | Self::Io { .. } => ErrorKind::Internal,
            Self::Image(e) => e.kind(),
            Self::Engine(e) => e.kind(),
        }
    }

    /// The code the client exits with (`errorDetail.code`): a failed RUN's exit status.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Run { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
        }
    }
}

/// Where the build's messages go (the response stream).
struct Output {
    tx: mpsc::Sender<ProgressMessage>,
    quiet: bool,
}

impl Output {
    async fn say(&self, text: impl Into<String>) {
        if self.quiet {
            return;
        }
        let _ = self
            .tx
            .send(ProgressMessage {
                stream: Some(text.into()),
                ..Default::default()
            })
            .await;
    }

    async fn send(&self, msg: ProgressMessage) {
        let _ = self.tx.send(msg).await;
    }
}

/// The state of the stage being built.
struct StageState {
    /// The current image; `None` before anything was made on `FROM scratch`.
    image: Option<String>,
    config: ContainerConfig,
    /// ARGs declared in this stage, with their values (`None`: declared, no value).
    args: Vec<(String, Option<String>)>,
    /// Whether this stage set CMD (ENTRYPOINT then keeps it).
    cmd_set: bool,
    author: String,
}

impl StageState {
    fn shell(&self) -> Vec<String> {
        self.config
            .shell
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect())
    }

    /// `NAME=value` of the ARGs with values, for substitution and RUN's environment.
    fn arg_env(&self) -> Vec<String> {
        self.args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect()
    }
}

/// A finished stage, for `FROM <stage>` and `COPY --from`.
struct DoneStage {
    name: Option<String>,
    image: Option<String>,
}

/// One build.
struct Builder<'a> {
    engine: &'a Engine,
    caller: Caller,
    opts: BuildOptions,
    ws: Workspace,
    out: Output,
    step: usize,
    total: usize,
    used_args: HashSet<String>,
    /// Intermediate containers still to remove.
    containers: Vec<String>,
}

impl Engine {
    /// Builds an image from a context tar (plain or gzip) with the Dockerfile in it; the
    /// build's messages go to `out` as dockerd streams them. Returns the image ID.
    pub async fn build(
        &self,
        caller: &Caller,
        context: Box<dyn Read + Send>,
        opts: BuildOptions,
        out: mpsc::Sender<ProgressMessage>,
    ) -> Result<String, BuildError> {
        let tags = opts
            .tags
            .iter()
            .map(|t| {
                let r = Reference::parse_normalized(t)?;
                if r.digest().is_some() {
                    return Err(ReferenceError::DigestTag.into());
                }
                Ok(r.with_default_tag())
            })
            .collect::<Result<Vec<Reference>, BuildError>>()?;
        if opts.pull {
            return Err(BuildError::invalid(
                "--pull is not available: berth cannot pull images from registries yet; build from images in the store",
            ));
        }
        if let Some(p) = &opts.platform {
            check_platform(p)?;
        }
        let tmp = self.images.root().join("tmp");
        let mut context = context;
        let ws = tokio::task::spawn_blocking(move || Workspace::unpack(&tmp, &mut context))
            .await
            .map_err(|e| BuildError::io("the build failed", std::io::Error::other(e)))??;
        let text = ws.dockerfile(&opts.dockerfile)?;
        ws.remove_ignored(&opts.dockerfile);
        let mut df = dockerfile::parse(&text)?;
        let quiet = opts.quiet;
        let mut b = Builder {
            engine: self,
            caller: *caller,
            ws,
            out: Output { tx: out, quiet },
            step: 0,
            total: 0,
            used_args: HashSet::new(),
            containers: Vec::new(),
            opts,
        };
        let result = b.run(&mut df).await;
        b.cleanup().await;
        let id = result?;
        for tag in &tags {
            self.tag_image(caller, &id, &tag.name(), tag.tag())?;
        }
        b.out
            .send(ProgressMessage {
                aux: Some(serde_json::json!({ "ID": id })),
                ..Default::default()
            })
            .await;
        b.out
            .say(format!("Successfully built {}\n", short(&id)))
            .await;
        for tag in &tags {
            b.out
                .say(format!("Successfully tagged {}\n", tag.familiar_string()))
                .await;
        }
        if quiet {
            b.out
                .send(ProgressMessage {
                    stream: Some(format!("{id}\n")),
                    ..Default::default()
                })
                .await;
        }
        let unused: Vec<&String> = b
            .opts
            .build_args
            .keys()
            .filter(|k| !b.used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            b.out
                .say(format!(
                    "[Warning] One or more build-args [{}] were not consumed\n",
                    names.join(" ")
                ))
                .await;
        }
        Ok(id)
    }
}

fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// `--platform` / `FROM --platform`: only this host's platform can be built here.
fn check_platform(p: &str) -> Result<(), BuildError> {
    let host = format!("linux/{}", crate::image::host_arch());
    let p = p.trim().to_ascii_lowercase();
    if p.is_empty() || p == host || p == "linux" || p.starts_with(&format!("{host}/")) {
        return Ok(());
    }
    Err(BuildError::invalid(format!(
        "platform {p} is not supported: berth builds images for {host} only"
    )))
}

impl Builder<'_> {
    async fn run(&mut self, df: &mut dockerfile::Dockerfile) -> Result<String, BuildError> {
        for w in &df.warnings {
            self.out.say(format!("{w}\n")).await;
        }
        let last = match &self.opts.target {
            Some(t) => df
                .stages
                .iter()
                .position(|s| {
                    matches!(&s.from.kind, Kind::From { name: Some(n), .. } if n.eq_ignore_ascii_case(t))
                })
                .ok_or_else(|| {
                    BuildError::invalid(format!("failed to reach build target {t} in Dockerfile"))
                })?,
            None => df.stages.len() - 1,
        };
        if !self.opts.labels.is_empty() {
            let mut line = String::from("LABEL");
            for (k, v) in &self.opts.labels {
                line.push_str(&format!(" {k:?}='{v}'"));
            }
            df.stages[last].steps.push(Step {
                line: 0,
                original: line.clone(),
                kind: Kind::Config(line),
            });
        }
        self.total = df.stages[..=last].iter().map(|s| 1 + s.steps.len()).sum();

        // ARGs before the first FROM: for FROM lines, and as defaults stages may redeclare.
        let mut global: Vec<(String, Option<String>)> = Vec::new();
        for step in &df.global_args {
            let Kind::Arg(args) = &step.kind else {
                continue;
            };
            let env: Vec<String> = global
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
                .collect();
            for (name, default) in parse_args(args, &env, step.line)? {
                let value = self.arg_value(&name, default);
                global.retain(|(k, _)| *k != name);
                global.push((name, value));
            }
        }
        let global_env: Vec<String> = global
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();

        let mut done: Vec<DoneStage> = Vec::new();
        for stage in &df.stages[..=last] {
            let state = self.from(&stage.from, &global_env, &done).await?;
            let mut state = state;
            for step in &stage.steps {
                self.header(step).await;
                self.dispatch(step, &mut state, &global, &done).await?;
            }
            let name = match &stage.from.kind {
                Kind::From { name, .. } => name.clone(),
                _ => None,
            };
            done.push(DoneStage {
                name,
                image: state.image.clone(),
            });
        }
        done.pop()
            .and_then(|d| d.image)
            .ok_or_else(|| BuildError::invalid("No image was generated. Is your Dockerfile empty?"))
    }

    /// A build arg's value: `--build-arg` wins over the default.
    fn arg_value(&mut self, name: &str, default: Option<String>) -> Option<String> {
        match self.opts.build_args.get(name) {
            Some(Some(v)) => {
                self.used_args.insert(name.to_string());
                Some(v.clone())
            }
            Some(None) => {
                self.used_args.insert(name.to_string());
                default
            }
            None => default,
        }
    }

    async fn header(&mut self, step: &Step) {
        self.step += 1;
        self.out
            .say(format!(
                "Step {}/{} : {}\n",
                self.step, self.total, step.original
            ))
            .await;
    }

    /// `FROM`: the stage's base image and config.
    async fn from(
        &mut self,
        step: &Step,
        global_env: &[String],
        done: &[DoneStage],
    ) -> Result<StageState, BuildError> {
        self.header(step).await;
        let Kind::From {
            image, platform, ..
        } = &step.kind
        else {
            return Err(BuildError::invalid("a stage must start with FROM"));
        };
        let name = expand(image, global_env, step.line)?;
        if let Some(p) = platform {
            check_platform(&expand(p, global_env, step.line)?)?;
        }
        let mut state = StageState {
            image: None,
            config: ContainerConfig::default(),
            args: Vec::new(),
            cmd_set: false,
            author: String::new(),
        };
        if name.eq_ignore_ascii_case("scratch") {
            self.out.say(" ---> \n").await;
            return Ok(state);
        }
        let image_id = match done.iter().find(|d| {
            d.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(&name))
        }) {
            Some(d) => d.image.clone(),
            None => Some(self.resolve_image(&name)?),
        };
        if let Some(id) = &image_id {
            let image = self.engine.images.resolve(id)?;
            state.config = image.config;
            self.out.say(format!(" ---> {}\n", short(id))).await;
        } else {
            self.out.say(" ---> \n").await;
        }
        state.image = image_id;
        // The base image's ONBUILD triggers run first, then are dropped.
        let triggers = state.config.on_build.take().unwrap_or_default();
        if !triggers.is_empty() {
            self.out
                .say(format!(
                    "# Executing {} build trigger{}\n",
                    triggers.len(),
                    if triggers.len() == 1 { "" } else { "s" }
                ))
                .await;
            for t in triggers {
                let step = dockerfile::parse_trigger(&t)?;
                Box::pin(self.dispatch(&step, &mut state, &[], done)).await?;
            }
        }
        Ok(state)
    }

    fn resolve_image(&self, name: &str) -> Result<String, BuildError> {
        match self.engine.images.resolve(name) {
            Ok(image) => Ok(image.id),
            Err(ImageError::NotFound { .. }) => {
                let tagged = Reference::parse_normalized(name)
                    .map(|r| r.with_default_tag().familiar_string())
                    .unwrap_or_else(|_| name.to_string());
                Err(BuildError::NotFound {
                    message: format!(
                        "pull access denied for {tagged}: berth cannot pull images from registries yet; load it with `berth load` or `docker load`"
                    ),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Variables for substitution in a step: the stage's ARGs (the config's ENV wins).
    fn vars(state: &StageState) -> Vec<String> {
        let mut v = state.arg_env();
        v.extend(state.config.env.clone().unwrap_or_default());
        v
    }

    async fn dispatch(
        &mut self,
        step: &Step,
        state: &mut StageState,
        global: &[(String, Option<String>)],
        done: &[DoneStage],
    ) -> Result<(), BuildError> {
        let nop = |text: &str| format!("/bin/sh -c #(nop)  {text}");
        match &step.kind {
            Kind::From { .. } => Err(BuildError::invalid("unexpected FROM")),
            Kind::Arg(args) => {
                let vars = Self::vars(state);
                for (name, default) in parse_args(args, &vars, step.line)? {
                    let default = default.or_else(|| {
                        global
                            .iter()
                            .find(|(k, _)| *k == name)
                            .and_then(|(_, v)| v.clone())
                    });
                    let value = self.arg_value(&name, default);
                    state.args.retain(|(k, _)| *k != name);
                    state.args.push((name, value));
                }
                let created_by = nop(&step.original);
                self.commit_config(state, &created_by, state.config.clone())
                    .await
            }
            Kind::Config(line) => {
                let mut config = state.config.clone();
                let extra = state.arg_env();
                crate::image::apply_changes_with(&mut config, std::slice::from_ref(line), &extra)
                    .map_err(|e| match e {
                    ImageError::Change { message, .. } => BuildError::Parse {
                        line: step.line,
                        message,
                    },
                    other => other.into(),
                })?;
                let workdir = line
                    .split_whitespace()
                    .next()
                    .is_some_and(|k| k.eq_ignore_ascii_case("WORKDIR"));
                let created_by = nop(&step.original);
                if workdir && config.working_dir != state.config.working_dir {
                    // dockerd makes the directory, owned as the current USER.
                    let dir = config.working_dir.clone();
                    let user = state.config.user.clone();
                    state.config = config.clone();
                    return self
                        .commit_files(state, &created_by, move |merged| {
                            let (uid, gid) = resolve_owner(merged, &user)?;
                            crate::rootfs::mkdir_all_in_root(merged, Path::new(&dir), uid, gid)
                                .map_err(|e| BuildError::io(format!("cannot create {dir}"), e))
                        })
                        .await;
                }
                self.commit_config(state, &created_by, config).await
            }
            Kind::Command {
                entrypoint,
                command,
            } => {
                let argv = match command {
                    Command::Exec(v) => v.clone(),
                    Command::Shell(s) => {
                        let mut v = state.shell();
                        v.push(s.clone());
                        v
                    }
                };
                let mut config = state.config.clone();
                if *entrypoint {
                    config.entrypoint = Some(argv);
                    if !state.cmd_set {
                        config.cmd = None;
                    }
                } else {
                    config.cmd = Some(argv);
                    state.cmd_set = true;
                }
                let created_by = nop(&step.original);
                self.commit_config(state, &created_by, config).await
            }
            Kind::Shell(shell) => {
                if shell.is_empty() {
                    return Err(BuildError::Parse {
                        line: step.line,
                        message: "SHELL requires at least one argument".into(),
                    });
                }
                let mut config = state.config.clone();
                config.shell = Some(shell.clone());
                let created_by = nop(&step.original);
                self.commit_config(state, &created_by, config).await
            }
            Kind::Maintainer(name) => {
                state.author = name.clone();
                let created_by = nop(&step.original);
                self.commit_config(state, &created_by, state.config.clone())
                    .await
            }
            Kind::Run {
                command,
                heredocs,
                flags,
            } => self.run_step(step, state, command, heredocs, flags).await,
            Kind::Copy {
                add,
                flags,
                sources,
                dest,
            } => {
                self.copy_step(step, state, *add, flags, sources, dest, done)
                    .await
            }
        }
    }

    /// The build cache: a child of the current image made by the same step.
    fn cached(&self, state: &StageState, key: &str) -> Option<String> {
        if self.opts.no_cache {
            return None;
        }
        let meta = self.engine.images.all_meta();
        let mut hits: Vec<&String> = meta
            .iter()
            .filter(|(id, m)| {
                m.parent == state.image
                    && m.build_key.as_deref() == Some(key)
                    && self.engine.images.resolve(id).is_ok()
            })
            .map(|(id, _)| id)
            .collect();
        hits.sort();
        hits.first().map(|s| s.to_string())
    }

    async fn use_cache(&mut self, state: &mut StageState, id: String) -> Result<(), BuildError> {
        let image = self.engine.images.resolve(&id)?;
        state.config = image.config;
        let mut meta = self.engine.images.meta(&id);
        meta.last_used = Some(chrono::Utc::now().to_rfc3339());
        let _ = self.engine.images.write_meta(&id, &meta);
        state.image = Some(id.clone());
        self.out.say(" ---> Using cache\n").await;
        self.out.say(format!(" ---> {}\n", short(&id))).await;
        Ok(())
    }

    fn key(created_by: &str, config: &ContainerConfig, author: &str) -> String {
        let config = serde_json::to_string(config).unwrap_or_default();
        format!("{created_by}\n{author}\n{config}")
    }

    fn container_config(state: &StageState, created_by: &str) -> ContainerConfig {
        let mut cc = state.config.clone();
        cc.cmd = Some(match created_by.strip_prefix("/bin/sh -c ") {
            Some(rest) => vec!["/bin/sh".into(), "-c".into(), rest.into()],
            None => vec![created_by.to_string()],
        });
        cc
    }

    /// A step that only changes the config.
    async fn commit_config(
        &mut self,
        state: &mut StageState,
        created_by: &str,
        config: ContainerConfig,
    ) -> Result<(), BuildError> {
        let key = Self::key(created_by, &config, &state.author);
        if let Some(hit) = self.cached(state, &key) {
            return self.use_cache(state, hit).await;
        }
        let child = ChildImage {
            parent: state.image.clone(),
            layer: None,
            config: config.clone(),
            container_config: Some(Self::container_config(state, created_by)),
            author: state.author.clone(),
            created_by: created_by.to_string(),
            build_key: Some(key),
            ..Default::default()
        };
        let id = self.make_image(child).await?;
        state.config = config;
        state.image = Some(id.clone());
        self.out.say(format!(" ---> {}\n", short(&id))).await;
        Ok(())
    }

    async fn make_image(&self, child: ChildImage<'static>) -> Result<String, BuildError> {
        let engine = self.engine.self_arc().ok_or_else(|| {
            BuildError::io("the engine is shutting down", std::io::Error::other("gone"))
        })?;
        tokio::task::spawn_blocking(move || engine.images.create_child(child))
            .await
            .map_err(|e| BuildError::io("the build failed", std::io::Error::other(e)))?
            .map_err(BuildError::from)
    }

    /// A step that writes files: `work(merged)` runs on an overlay of the current image, whose
    /// upper directory becomes the new layer.
    async fn commit_files<F>(
        &mut self,
        state: &mut StageState,
        created_by: &str,
        work: F,
    ) -> Result<(), BuildError>
    where
        F: FnOnce(&Path) -> Result<(), BuildError> + Send + 'static,
    {
        let key = Self::key(created_by, &state.config, &state.author);
        if let Some(hit) = self.cached(state, &key) {
            return self.use_cache(state, hit).await;
        }
        let layers = match &state.image {
            Some(id) => self.engine.images.resolve(id)?.layer_dirs,
            None => Vec::new(),
        };
        let dir = self.ws.new_dir("step")?;
        let lower = if layers.is_empty() {
            let empty = dir.join("empty");
            std::fs::create_dir(&empty).map_err(|e| BuildError::io("cannot create scratch", e))?;
            vec![empty]
        } else {
            layers.clone()
        };
        let overlay = crate::rootfs::Overlay::in_dir(&dir, lower);
        overlay.mount().map_err(|e| {
            BuildError::io(
                "cannot mount the step's file system",
                std::io::Error::other(e),
            )
        })?;
        self.ws.mounted(overlay.merged.clone());
        let merged = overlay.merged.clone();
        let written = tokio::task::spawn_blocking(move || work(&merged))
            .await
            .map_err(|e| BuildError::io("the build failed", std::io::Error::other(e)))?;
        self.ws.unmount(&overlay.merged);
        written?;
        let engine = self.engine.self_arc().ok_or_else(|| {
            BuildError::io("the engine is shutting down", std::io::Error::other("gone"))
        })?;
        let child = ChildImage {
            parent: state.image.clone(),
            config: state.config.clone(),
            container_config: Some(Self::container_config(state, created_by)),
            author: state.author.clone(),
            created_by: created_by.to_string(),
            build_key: Some(key),
            ..Default::default()
        };
        let upper = overlay.upper.clone();
        let id = tokio::task::spawn_blocking(move || {
            engine.images.create_from_upper(&upper, &layers, &[], child)
        })
        .await
        .map_err(|e| BuildError::io("the build failed", std::io::Error::other(e)))??;
        state.image = Some(id.clone());
        self.out.say(format!(" ---> {}\n", short(&id))).await;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_step(
        &mut self,
        step: &Step,
        state: &mut StageState,
        add: bool,
        flags: &[(String, Option<String>)],
        sources: &[Source],
        dest: &str,
        done: &[DoneStage],
    ) -> Result<(), BuildError> {
        let verb = if add { "ADD" } else { "COPY" };
        let vars = Self::vars(state);
        let mut from = None;
        let mut chown = None;
        let mut chmod = None;
        for (name, value) in flags {
            let value = value.clone().unwrap_or_default();
            match name.as_str() {
                "from" if !add => from = Some(expand(&value, &vars, step.line)?),
                "chown" => chown = Some(expand(&value, &vars, step.line)?),
                "chmod" => {
                    let v = expand(&value, &vars, step.line)?;
                    chmod = Some(u32::from_str_radix(&v, 8).map_err(|_| BuildError::Parse {
                        line: step.line,
                        message: format!("invalid chmod parameter: {v}"),
                    })?);
                }
                other => {
                    return Err(BuildError::Parse {
                        line: step.line,
                        message: format!("Unknown flag: {other}"),
                    })
                }
            }
        }
        let expanded: Vec<(Source, String)> = sources
            .iter()
            .map(|s| {
                let e = match s {
                    Source::Path(p) => expand(p, &vars, step.line)?,
                    Source::HereDoc(_) => String::new(),
                };
                Ok((s.clone(), e))
            })
            .collect::<Result<_, BuildError>>()?;
        let dest = expand(dest, &vars, step.line)?;
        // Where the sources are read from: the context, or a stage's or image's files.
        let (root, _view) = match &from {
            None => (self.ws.context(), None),
            Some(f) => {
                let image = match done.iter().enumerate().find(|(i, d)| {
                    d.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(f))
                        || i.to_string() == *f
                }) {
                    Some((_, d)) => d.image.clone(),
                    None => Some(self.resolve_image(f)?),
                };
                let view = self.view(image.as_deref())?;
                (view.clone(), Some(view))
            }
        };
        let resolved = {
            let root = root.clone();
            tokio::task::spawn_blocking(move || copy::resolve(&root, &expanded, add, chmod))
                .await
                .map_err(|e| BuildError::io("the build failed", std::io::Error::other(e)))??
        };
        let abs_dest = if dest.starts_with('/') {
            dest.clone()
        } else {
            let wd = if state.config.working_dir.is_empty() {
                "/".to_string()
            } else {
                state.config.working_dir.clone()
            };
            let mut d = format!("{}/{}", wd.trim_end_matches('/'), dest);
            if dest == "." || dest == "./" {
                d = format!("{}/", wd.trim_end_matches('/'));
            }
            d
        };
        let mut created_by = format!("/bin/sh -c #(nop) {verb} {} in {} ", resolved.digest, dest);
        if let Some(c) = &chown {
            created_by.push_str(&format!("--chown={c} "));
        }
        if let Some(m) = chmod {
            created_by.push_str(&format!("--chmod={m:o} "));
        }
        let scratch = self.ws.new_dir("copy")?.join("sources.tar");
        let chown = chown.unwrap_or_default();
        let result = self
            .commit_files(state, &created_by, move |merged| {
                let (uid, gid) = resolve_owner(merged, &chown)?;
                copy::write(
                    &resolved,
                    &copy::Target {
                        merged,
                        dest: abs_dest,
                        uid,
                        gid,
                        chmod,
                        scratch,
                    },
                    add,
                )
            })
            .await;
        if let Some(view) = _view {
            self.ws.unmount(&view);
        }
        result
    }

    /// A read-only view of an image's files (for `COPY --from`).
    fn view(&self, image: Option<&str>) -> Result<PathBuf, BuildError> {
        let dir = self.ws.new_dir("view")?;
        let layers = match image {
            Some(id) => self.engine.images.resolve(id)?.layer_dirs,
            None => Vec::new(),
        };
        match layers.len() {
            0 => Ok(dir),
            1 => Ok(layers[0].clone()),
            _ => {
                let lower: Vec<String> = layers
                    .iter()
                    .rev()
                    .map(|p| p.display().to_string())
                    .collect();
                let data = format!("lowerdir={}", lower.join(":"));
                nix::mount::mount(
                    Some("overlay"),
                    &dir,
                    Some("overlay"),
                    nix::mount::MsFlags::MS_RDONLY,
                    Some(data.as_str()),
                )
                .map_err(|e| BuildError::io("cannot mount the stage's files", e.into()))?;
                self.ws.mounted(dir.clone());
                Ok(dir)
            }
        }
    }

    async fn run_step(
        &mut self,
        _step: &Step,
        state: &mut StageState,
        command: &Command,
        heredocs: &[String],
        flags: &[(String, Option<String>)],
    ) -> Result<(), BuildError> {
        if let Some((name, _)) = flags.first() {
            return Err(BuildError::invalid(format!(
                "the --{name} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"
            )));
        }
        let argv = match command {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = state.shell();
                match heredocs.first() {
                    Some(script) if s.trim().is_empty() || s.trim_start().starts_with("<<") => {
                        v.push(script.clone())
                    }
                    Some(_) => {
                        return Err(BuildError::invalid(
                            "a RUN heredoc must be the whole command (RUN <<EOF ... EOF)",
                        ))
                    }
                    None => v.push(s.clone()),
                }
                v
            }
        };
        let image = state.image.clone().ok_or_else(|| {
            BuildError::invalid("RUN needs a base image: FROM scratch has no shell to run")
        })?;
        // Build args in scope become the command's environment (and, but for proxies, part
        // of what the history and the cache see).
        let arg_env = state.arg_env();
        let shown_args: Vec<&String> = arg_env
            .iter()
            .filter(|kv| !PROXY_ARGS.iter().any(|p| kv.starts_with(&format!("{p}="))))
            .collect();
        let mut created_by = argv.join(" ");
        if !shown_args.is_empty() {
            created_by = format!(
                "|{} {} {}",
                shown_args.len(),
                shown_args
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                created_by
            );
        }
        let key = Self::key(&created_by, &state.config, &state.author);
        if let Some(hit) = self.cached(state, &key) {
            return self.use_cache(state, hit).await;
        }
        let mut config = state.config.clone();
        config.image = image.clone();
        config.cmd = Some(argv.clone());
        config.entrypoint = Some(Vec::new());
        let mut env = config.env.clone().unwrap_or_default();
        for kv in &arg_env {
            let name = kv.split('=').next().unwrap_or("");
            if !env.iter().any(|e| e.split('=').next() == Some(name)) {
                env.push(kv.clone());
            }
        }
        config.env = Some(env);
        config.attach_stdout = true;
        config.attach_stderr = true;
        config.labels = None;
        // A build step is not a service: no health checks (dockerd disables them too).
        config.healthcheck = Some(serde_json::json!({ "Test": ["NONE"] }));
        let created = self
            .engine
            .create_container(
                &self.caller,
                None,
                ContainerCreateRequest {
                    config,
                    ..Default::default()
                },
            )
            .await?;
        let cid = created.id.clone();
        self.containers.push(cid.clone());
        self.out
            .say(format!(" ---> Running in {}\n", short(&cid)))
            .await;
        let mut session = self
            .engine
            .attach_container(
                &self.caller,
                &cid,
                crate::container::AttachOptions {
                    stdin: false,
                    stdout: true,
                    stderr: true,
                    detach_keys: None,
                },
            )
            .await?;
        let wait = self
            .engine
            .wait_container(&self.caller, &cid, WaitCondition::NextExit)
            .await?;
        self.engine.start_container(&self.caller, &cid).await?;
        while let Some(chunk) = session.output.recv().await {
            self.out
                .say(String::from_utf8_lossy(&chunk.bytes).into_owned())
                .await;
        }
        let status = wait.await;
        if status.status_code != 0 {
            if !self.opts.force_remove {
                // Kept for inspection unless --force-rm, as dockerd keeps it.
                self.containers.retain(|c| *c != cid);
            }
            return Err(BuildError::Run {
                command: argv.join(" "),
                code: status.status_code,
            });
        }
        let container = self.engine.find(&cid).map_err(EngineError::from)?;
        let rec = container.snapshot();
        let upper = container.dir.join("diff");
        let layers = rec.layers.clone();
        let engine = self.engine.self_arc().ok_or_else(|| {
            BuildError::io("the engine is shutting down", std::io::Error::other("gone"))
        })?;
        let child = ChildImage {
            parent: Some(image),
            config: state.config.clone(),
            container_config: Some({
                let mut cc = state.config.clone();
                cc.cmd = Some(argv.clone());
                cc
            }),
            container: cid.clone(),
            author: state.author.clone(),
            created_by,
            build_key: Some(key),
            ..Default::default()
        };
        let id = tokio::task::spawn_blocking(move || {
            engine
                .images
                .create_from_upper(&upper, &layers, INIT_PATHS, child)
        })
        .await
        .map_err(|e| BuildError::io("the build failed", std::io::Error::other(e)))??;
        if self.opts.remove || self.opts.force_remove {
            self.out
                .say(format!("Removing intermediate container {}\n", short(&cid)))
                .await;
            self.remove_container(&cid).await;
        }
        state.image = Some(id.clone());
        self.out.say(format!(" ---> {}\n", short(&id))).await;
        Ok(())
    }

    async fn remove_container(&mut self, id: &str) {
        if let Err(e) = self.engine.remove_container(&self.caller, id, true).await {
            tracing::warn!(container = id, error = %crate::error::Chain(&e), "cannot remove an intermediate container");
        }
        self.containers.retain(|c| c != id);
    }

    /// Removes what the build leaves: intermediate containers (with `rm`), then scratch.
    async fn cleanup(&mut self) {
        let left = std::mem::take(&mut self.containers);
        for id in left {
            self.remove_container(&id).await;
        }
    }
}

/// Expands variables in a word as dockerd's shell lexer does (quotes removed).
fn expand(s: &str, vars: &[String], line: usize) -> Result<String, BuildError> {
    crate::image::change_words(s, vars, false)
        .map(|w| w.join(""))
        .map_err(|message| BuildError::Parse { line, message })
}

/// `ARG` arguments: `NAME[=default]` each, defaults expanded.
fn parse_args(
    args: &str,
    vars: &[String],
    line: usize,
) -> Result<Vec<(String, Option<String>)>, BuildError> {
    let mut out = Vec::new();
    for word in args.split_whitespace() {
        match word.split_once('=') {
            Some((name, value)) => {
                let value = expand(value, vars, line)?;
                out.push((name.to_string(), Some(value)));
            }
            None => out.push((word.to_string(), None)),
        }
    }
    if out.is_empty() {
        return Err(BuildError::Parse {
            line,
            message: "ARG requires at least one argument".into(),
        });
    }
    Ok(out)
}

/// `user[:group]` (names or numbers) against the step's `/etc/passwd` and `/etc/group`.
fn resolve_owner(merged: &Path, user: &str) -> Result<(u32, u32), BuildError> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let passwd = crate::rootfs::read_in_root(merged, Path::new("/etc/passwd"))
        .ok()
        .flatten();
    let group = crate::rootfs::read_in_root(merged, Path::new("/etc/group"))
        .ok()
        .flatten();
    let u = crate::rootfs::resolve_user(user, passwd.as_deref(), group.as_deref())
        .map_err(|e| BuildError::invalid(e.to_string()))?;
    Ok((u.uid, u.gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_platforms() {
        let a = parse_args("A B=${X:-def} C=1", &[], 3).unwrap();
        assert_eq!(
            a,
            vec![
                ("A".into(), None),
                ("B".into(), Some("def".into())),
                ("C".into(), Some("1".into()))
            ]
        );
        assert!(check_platform(&format!("linux/{}", crate::image::host_arch())).is_ok());
        assert!(check_platform("windows/amd64").is_err());
        assert_eq!(
            BuildError::Run {
                command: "/bin/sh -c exit 4".into(),
                code: 4
            }
            .to_string(),
            "The command '/bin/sh -c exit 4' returned a non-zero code: 4"
        );
    }
}
