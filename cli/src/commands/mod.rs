//! The commands, with docker's names, aliases and flags. Each file holds one command or a
//! small group; this module only routes.

pub mod attach;
pub mod bench;
pub mod build;
pub mod commit;
pub mod container_opts;
pub mod cp;
pub mod df;
pub mod exec;
pub mod export;
pub mod history;
pub mod image_prune;
pub mod images;
pub mod inspect;
pub mod lifecycle;
pub mod load;
pub mod logs;
pub mod prune;
pub mod ps;
pub mod registry;
pub mod run;
pub mod save;
pub mod stats;
pub mod system;
pub mod top;
pub mod update;

use clap::Subcommand;

use crate::backend::Backend;

/// A berth command.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// Create a new container
    Create(run::CreateArgs),
    /// Start one or more stopped containers
    Start(lifecycle::StartArgs),
    /// Stop one or more running containers
    Stop(lifecycle::StopArgs),
    /// Kill one or more running containers
    Kill(lifecycle::KillArgs),
    /// Restart one or more containers
    Restart(lifecycle::StopArgs),
    /// Remove one or more containers
    Rm(lifecycle::RmArgs),
    /// List containers
    Ps(ps::PsArgs),
    /// Fetch the logs of a container
    Logs(logs::LogsArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(attach::AttachArgs),
    /// Return low-level information on containers or images
    Inspect(inspect::InspectArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(lifecycle::ContainersArgs),
    /// Rename a container
    Rename(lifecycle::RenameArgs),
    /// Pause all processes within one or more containers
    Pause(lifecycle::ContainersArgs),
    /// Unpause all processes within one or more containers
    Unpause(lifecycle::ContainersArgs),
    /// Update configuration of one or more containers
    Update(update::UpdateArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Export a container's filesystem as a tar archive
    Export(export::ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(export::DiffArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Display the running processes of a container
    Top(top::TopArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Download an image from a registry
    Pull(images::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
    /// Log in to a registry
    Login(registry::LoginArgs),
    /// Log out from a registry
    Logout(registry::LogoutArgs),
    /// Load an image from a tar archive or STDIN
    Load(load::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(load::ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Remove one or more images
    Rmi(images::RmiArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(save::SaveArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
    /// Show the berth version information
    Version(system::VersionArgs),
    /// Display system-wide information
    Info(system::InfoArgs),
    /// Get real time events from the server
    Events(system::EventsArgs),
    /// Measure berth through berthd, berth --daemonless, docker and podman side by side
    Bench(bench::BenchArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage berth
    #[command(subcommand)]
    System(SystemCommand),
    /// Manage builds
    #[command(subcommand)]
    Builder(BuilderCommand),
}

/// `berth builder ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum BuilderCommand {
    /// Remove build cache
    Prune(image_prune::BuilderPruneArgs),
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
}

/// `berth container ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// Create a new container
    Create(run::CreateArgs),
    /// Start one or more stopped containers
    Start(lifecycle::StartArgs),
    /// Stop one or more running containers
    Stop(lifecycle::StopArgs),
    /// Kill one or more running containers
    Kill(lifecycle::KillArgs),
    /// Restart one or more containers
    Restart(lifecycle::StopArgs),
    /// Remove one or more containers
    #[command(alias = "remove")]
    Rm(lifecycle::RmArgs),
    /// List containers
    #[command(aliases = ["list", "ps"])]
    Ls(ps::PsArgs),
    /// Fetch the logs of a container
    Logs(logs::LogsArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(attach::AttachArgs),
    /// Display detailed information on one or more containers
    Inspect(inspect::TypedInspectArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(lifecycle::ContainersArgs),
    /// Rename a container
    Rename(lifecycle::RenameArgs),
    /// Pause all processes within one or more containers
    Pause(lifecycle::ContainersArgs),
    /// Unpause all processes within one or more containers
    Unpause(lifecycle::ContainersArgs),
    /// Update configuration of one or more containers
    Update(update::UpdateArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Export a container's filesystem as a tar archive
    Export(export::ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(export::DiffArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Display the running processes of a container
    Top(top::TopArgs),
    /// Remove all stopped containers
    Prune(prune::PruneArgs),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
}

/// `berth image ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(images::ImagesArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(images::RmiArgs),
    /// Display detailed information on one or more images
    Inspect(inspect::TypedInspectArgs),
    /// Download an image from a registry
    Pull(images::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
    /// Load an image from a tar archive or STDIN
    Load(load::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(load::ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(save::SaveArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Remove unused images
    Prune(image_prune::ImagePruneArgs),
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
}

/// `berth system ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum SystemCommand {
    /// Display system-wide information
    Info(system::InfoArgs),
    /// Get real time events from the server
    Events(system::EventsArgs),
    /// Show docker disk usage
    Df(df::DfArgs),
}

impl Command {
    /// The top-level spelling of a grouped command (`container ls` is `ps`).
    fn flatten(self) -> Self {
        match self {
            Self::Container(c) => match c {
                ContainerCommand::Run(a) => Self::Run(a),
                ContainerCommand::Create(a) => Self::Create(a),
                ContainerCommand::Start(a) => Self::Start(a),
                ContainerCommand::Stop(a) => Self::Stop(a),
                ContainerCommand::Kill(a) => Self::Kill(a),
                ContainerCommand::Restart(a) => Self::Restart(a),
                ContainerCommand::Rm(a) => Self::Rm(a),
                ContainerCommand::Ls(a) => Self::Ps(a),
                ContainerCommand::Logs(a) => Self::Logs(a),
                ContainerCommand::Exec(a) => Self::Exec(a),
                ContainerCommand::Attach(a) => Self::Attach(a),
                ContainerCommand::Inspect(a) => Self::Inspect(a.with_kind("container")),
                ContainerCommand::Wait(a) => Self::Wait(a),
                ContainerCommand::Rename(a) => Self::Rename(a),
                ContainerCommand::Pause(a) => Self::Pause(a),
                ContainerCommand::Unpause(a) => Self::Unpause(a),
                ContainerCommand::Update(a) => Self::Update(a),
                ContainerCommand::Cp(a) => Self::Cp(a),
                ContainerCommand::Export(a) => Self::Export(a),
                ContainerCommand::Diff(a) => Self::Diff(a),
                ContainerCommand::Stats(a) => Self::Stats(a),
                ContainerCommand::Top(a) => Self::Top(a),
                ContainerCommand::Prune(a) => Self::Container(ContainerCommand::Prune(a)),
                ContainerCommand::Commit(a) => Self::Commit(a),
            },
            Self::Image(c) => match c {
                ImageCommand::Ls(a) => Self::Images(a),
                ImageCommand::Rm(a) => Self::Rmi(a),
                ImageCommand::Inspect(a) => Self::Inspect(a.with_kind("image")),
                ImageCommand::Pull(a) => Self::Pull(a),
                ImageCommand::Push(a) => Self::Push(a),
                ImageCommand::Load(a) => Self::Load(a),
                ImageCommand::Import(a) => Self::Import(a),
                ImageCommand::Tag(a) => Self::Tag(a),
                ImageCommand::Save(a) => Self::Save(a),
                ImageCommand::History(a) => Self::History(a),
                ImageCommand::Prune(a) => Self::Image(ImageCommand::Prune(a)),
                ImageCommand::Build(a) => Self::Build(a),
            },
            Self::System(c) => match c {
                SystemCommand::Info(a) => Self::Info(a),
                SystemCommand::Events(a) => Self::Events(a),
                SystemCommand::Df(a) => Self::System(SystemCommand::Df(a)),
            },
            Self::Builder(BuilderCommand::Build(a)) => Self::Build(a),
            other => other,
        }
    }
}

/// Runs `command` against `backend`.
pub async fn execute<B: Backend>(backend: &B, command: Command) -> anyhow::Result<()> {
    match command.flatten() {
        Command::Run(a) => run::run(backend, a).await,
        Command::Create(a) => run::create(backend, a).await,
        Command::Start(a) => lifecycle::start(backend, a).await,
        Command::Stop(a) => lifecycle::stop(backend, a).await,
        Command::Kill(a) => lifecycle::kill(backend, a).await,
        Command::Restart(a) => lifecycle::restart(backend, a).await,
        Command::Rm(a) => lifecycle::rm(backend, a).await,
        Command::Ps(a) => ps::ps(backend, a).await,
        Command::Logs(a) => logs::logs(backend, a).await,
        Command::Exec(a) => exec::exec(backend, a).await,
        Command::Attach(a) => attach::attach(backend, a).await,
        Command::Inspect(a) => inspect::inspect(backend, a).await,
        Command::Wait(a) => lifecycle::wait(backend, a).await,
        Command::Rename(a) => lifecycle::rename(backend, a).await,
        Command::Pause(a) => lifecycle::pause(backend, a).await,
        Command::Unpause(a) => lifecycle::unpause(backend, a).await,
        Command::Update(a) => update::update(backend, a).await,
        Command::Cp(a) => cp::cp(backend, a).await,
        Command::Export(a) => export::export(backend, a).await,
        Command::Diff(a) => export::diff(backend, a).await,
        Command::Stats(a) => stats::stats(backend, a).await,
        Command::Top(a) => top::top(backend, a).await,
        Command::Images(a) => images::images(backend, a).await,
        Command::Pull(a) => images::pull(backend, a).await,
        Command::Push(a) => registry::push(backend, a).await,
        Command::Login(a) => registry::login(backend, a).await,
        Command::Logout(a) => registry::logout(a).await,
        Command::Load(a) => load::load(backend, a).await,
        Command::Import(a) => load::import(backend, a).await,
        Command::Tag(a) => images::tag(backend, a).await,
        Command::Rmi(a) => images::rmi(backend, a).await,
        Command::Version(a) => system::version(backend, a).await,
        Command::Info(a) => system::info(backend, a).await,
        Command::Events(a) => system::events(backend, a).await,
        Command::Bench(a) => bench::bench(a).await,
        Command::Container(ContainerCommand::Prune(a)) => prune::prune(backend, a).await,
        Command::Save(a) => save::save(backend, a).await,
        Command::History(a) => history::history(backend, a).await,
        Command::Commit(a) => commit::commit(backend, a).await,
        Command::Image(ImageCommand::Prune(a)) => image_prune::image_prune(backend, a).await,
        Command::System(SystemCommand::Df(a)) => df::df(backend, a).await,
        Command::Builder(BuilderCommand::Prune(a)) => image_prune::builder_prune(backend, a).await,
        Command::Build(a) => build::build(backend, a).await,
        Command::Container(_) | Command::Image(_) | Command::System(_) | Command::Builder(_) => {
            unreachable!("grouped commands are flattened above")
        }
    }
}
