//! `images` / `image ls`, `tag`, `rmi` / `image rm` and `pull`.

use api_types::{ImageDeleteItem, ImageSummary};
use clap::Args;
use serde_json::{json, Value};

use super::ps::{local_time_string, parse_filters};
use crate::backend::{Backend, ImageListOptions, PullOptions};
use crate::exit::StatusError;
use crate::format::{short_id, RowFormat};
use crate::reference::ImageRef;
use crate::units::{human_size, human_size_with_precision, time_ago};

const DEFAULT_TABLE: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const DIGESTS_TABLE: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// List images
#[derive(Args, Debug, Clone, Default)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Only images of this repository
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

/// `berth images`.
pub async fn images<B: Backend>(backend: &B, args: ImagesArgs) -> anyhow::Result<()> {
    let default = if args.digests {
        DIGESTS_TABLE
    } else {
        DEFAULT_TABLE
    };
    let format_text = match args.format.as_deref().unwrap_or("") {
        "" | "table" if args.quiet => "{{.ID}}",
        f => f,
    };
    let format = RowFormat::parse(format_text, default)
        .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
    let mut filters = parse_filters(&args.filter)?;
    if let Some(r) = &args.repository {
        filters
            .add_arg(&format!("reference={r}"))
            .map_err(anyhow::Error::msg)?;
    }
    let opts = ImageListOptions {
        all: args.all,
        digests: args.digests,
        filters,
    };
    let images = backend.list_images(&opts).await?;
    let now = chrono::Utc::now().timestamp();
    let rows: Vec<Value> = images
        .iter()
        .flat_map(|i| image_rows(i, !args.no_trunc, args.digests, now))
        .collect();
    let out = format
        .render(&image_header(), &rows)
        .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
    print!("{out}");
    Ok(())
}

/// The header row of `images`.
pub fn image_header() -> Value {
    json!({
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
        "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
        "Containers": "CONTAINERS",
    })
}

/// The rows docker shows for one image: one per repository and tag, or `<none>`.
pub fn image_rows(image: &ImageSummary, trunc: bool, show_digests: bool, now: i64) -> Vec<Value> {
    let mut repos: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    fn entry(repos: &mut Vec<(String, Vec<String>, Vec<String>)>, repo: String) -> usize {
        match repos.iter().position(|(r, _, _)| *r == repo) {
            Some(i) => i,
            None => {
                repos.push((repo, Vec::new(), Vec::new()));
                repos.len() - 1
            }
        }
    }
    for tagged in image.repo_tags.iter().flatten() {
        if let Ok(r) = ImageRef::parse(tagged) {
            if let Some(tag) = &r.tag {
                let i = entry(&mut repos, r.familiar_name());
                repos[i].1.push(tag.clone());
            }
        }
    }
    for digested in image.repo_digests.iter().flatten() {
        if let Ok(r) = ImageRef::parse(digested) {
            if let Some(d) = &r.digest {
                let i = entry(&mut repos, r.familiar_name());
                repos[i].2.push(d.clone());
            }
        }
    }
    let row = |repo: &str, tag: &str, digest: &str| image_row(image, repo, tag, digest, trunc, now);
    let mut rows = Vec::new();
    for (repo, tags, digests) in &repos {
        if tags.is_empty() {
            if show_digests && !digests.is_empty() {
                rows.extend(digests.iter().map(|d| row(repo, "<none>", d)));
            } else {
                rows.push(row(repo, "<none>", "<none>"));
            }
            continue;
        }
        for tag in tags {
            match digests.first() {
                Some(_) if show_digests => rows.extend(digests.iter().map(|d| row(repo, tag, d))),
                _ => rows.push(row(repo, tag, "<none>")),
            }
        }
    }
    if rows.is_empty() {
        rows.push(row("<none>", "<none>", "<none>"));
    }
    rows
}

fn image_row(
    image: &ImageSummary,
    repo: &str,
    tag: &str,
    digest: &str,
    trunc: bool,
    now: i64,
) -> Value {
    let size = |n: i64| human_size_with_precision(n as f64, 3);
    json!({
        "ID": if trunc { short_id(&image.id) } else { image.id.clone() },
        "Repository": repo,
        "Tag": tag,
        "Digest": digest,
        "CreatedSince": time_ago(image.created, now),
        "CreatedAt": local_time_string(image.created),
        "Size": size(image.size),
        "VirtualSize": human_size(image.virtual_size.max(image.size) as f64),
        "SharedSize": if image.shared_size < 0 { "N/A".to_string() } else { size(image.shared_size) },
        "UniqueSize": if image.shared_size < 0 { "N/A".to_string() } else { size(image.size - image.shared_size) },
        "Containers": if image.containers < 0 { "N/A".to_string() } else { image.containers.to_string() },
    })
}

/// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
#[derive(Args, Debug, Clone)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

/// `berth tag`.
pub async fn tag<B: Backend>(backend: &B, args: TagArgs) -> anyhow::Result<()> {
    let target = ImageRef::parse(&args.target).map_err(anyhow::Error::msg)?;
    if target.digest.is_some() {
        anyhow::bail!("refusing to create a tag with a digest reference");
    }
    backend
        .tag_image(&args.source, &target.full_name(), target.tag_or_latest())
        .await?;
    Ok(())
}

/// Remove one or more images
#[derive(Args, Debug, Clone)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// `berth rmi`: prints `Untagged:`/`Deleted:` lines and fails if any image could not go.
pub async fn rmi<B: Backend>(backend: &B, args: RmiArgs) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for image in &args.images {
        match backend.remove_image(image, args.force, args.no_prune).await {
            Ok(items) => {
                for item in items {
                    match item {
                        ImageDeleteItem::Untagged(r) => println!("Untagged: {r}"),
                        ImageDeleteItem::Deleted(id) => println!("Deleted: {id}"),
                    }
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StatusError::new(1, errors.join("\n")).into())
    }
}

/// Download an image from a registry
#[derive(Args, Debug, Clone)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string", env = "DOCKER_DEFAULT_PLATFORM")]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub image: String,
}

/// `berth pull`.
pub async fn pull<B: Backend>(backend: &B, args: PullArgs) -> anyhow::Result<()> {
    let r = ImageRef::parse(&args.image).map_err(anyhow::Error::msg)?;
    if args.all_tags {
        anyhow::bail!("berth cannot pull --all-tags: pull the tags one by one");
    }
    if r.tag.is_none() && r.digest.is_none() && !args.quiet {
        println!("Using default tag: latest");
    }
    let tag = r
        .digest
        .clone()
        .unwrap_or_else(|| r.tag_or_latest().to_string());
    let opts = PullOptions {
        repository: r.full_name(),
        tag,
        platform: args.platform.clone().unwrap_or_default(),
        auth: super::registry::credentials_for(&r.domain)?,
    };
    let progress = backend.pull(&opts).await?;
    super::registry::show_transfer(progress, args.quiet).await?;
    let mut full = r.full_name();
    match &r.digest {
        Some(d) => full = format!("{full}@{d}"),
        None => full = format!("{full}:{}", r.tag_or_latest()),
    }
    println!("{full}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<ImageSummary> {
        serde_json::from_str(include_str!("../../tests/fixtures/images-list.json")).unwrap()
    }

    #[test]
    fn default_table_matches_docker_images() {
        let now = 1_795_790_400;
        let rows: Vec<Value> = sample()[..3]
            .iter()
            .chain(sample()[8..9].iter())
            .flat_map(|i| image_rows(i, true, false, now))
            .collect();
        let out = RowFormat::parse("", DEFAULT_TABLE)
            .unwrap()
            .render(&image_header(), &rows)
            .unwrap();
        let expected = "\
REPOSITORY   TAG       IMAGE ID       CREATED              SIZE
accbuild2    latest    2d4034cacfff   13 seconds ago       1.99MB
accbuild     latest    2d4034cacfff   13 seconds ago       1.99MB
alpine       3.10      c9a2ddd746a3   33 seconds ago       1.99MB
alpine       latest    c9a2ddd746a3   33 seconds ago       1.99MB
busybox      latest    c9a2ddd746a3   33 seconds ago       1.99MB
ck-build     v1        003a1a947e8b   About a minute ago   1.98MB
ck-build     v2        003a1a947e8b   About a minute ago   1.98MB
ck-build     v4        003a1a947e8b   About a minute ago   1.98MB
<none>       <none>    b269f36bb387   About a minute ago   1.98MB
";
        assert_eq!(out, expected);
    }

    #[test]
    fn quiet_no_trunc_and_placeholders() {
        let img = &sample()[0];
        let rows = image_rows(img, false, false, 0);
        let f = RowFormat::parse("{{.ID}}", DEFAULT_TABLE).unwrap();
        assert_eq!(
            f.render(&image_header(), &rows).unwrap(),
            format!("{}\n{}\n", img.id, img.id)
        );
        let f = RowFormat::parse(
            "{{.Repository}}:{{.Tag}} {{.Size}} {{.Containers}}",
            DEFAULT_TABLE,
        )
        .unwrap();
        assert_eq!(
            f.render(&image_header(), &image_rows(img, true, false, 0))
                .unwrap(),
            "accbuild2:latest 1.99MB N/A\naccbuild:latest 1.99MB N/A\n"
        );
    }

    #[test]
    fn digests_get_their_own_rows() {
        let img = ImageSummary {
            id: "sha256:aaaaaaaaaaaaaaaa".into(),
            repo_tags: None,
            repo_digests: Some(vec!["localhost:5000/app@sha256:1234".into()]),
            ..Default::default()
        };
        let rows = image_rows(&img, true, true, 0);
        assert_eq!(
            (rows[0]["Repository"].as_str(), rows[0]["Tag"].as_str()),
            (Some("localhost:5000/app"), Some("<none>"))
        );
        assert_eq!(rows[0]["Digest"], "sha256:1234");
        let rows = image_rows(&ImageSummary::default(), true, false, 0);
        assert_eq!(rows[0]["Repository"], "<none>");
    }
}
