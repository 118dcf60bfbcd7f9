//! `docker images`: the list and its filters.

use std::collections::BTreeMap;

use api_types::filters::Filters;
use api_types::ImageSummary;

use super::error::ImageError;
use super::reference::familiar_match;
use super::{ImageStore, Reference};

/// The filters `GET /images/json` accepts.
const FILTERS: [&str; 5] = ["before", "dangling", "label", "reference", "since"];

impl ImageStore {
    /// The images as `GET /images/json` lists them, newest first. Filters: `reference`
    /// (a glob on the familiar name, with or without tag), `dangling=true|false`, `label=k`
    /// or `label=k=v` (all must match), `before`/`since` (an image name). Without `all`,
    /// untagged images other images were made from (build steps) are hidden, as dockerd
    /// hides them.
    pub fn list(&self, all: bool, filters: &Filters) -> Result<Vec<ImageSummary>, ImageError> {
        if let Some(unknown) = filters.0.keys().find(|k| !FILTERS.contains(&k.as_str())) {
            return Err(ImageError::InvalidFilter {
                filter: unknown.clone(),
            });
        }
        let dangling = match filters.get("dangling") {
            [] => None,
            values => Some(
                values
                    .iter()
                    .map(|v| parse_bool("dangling", v))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let dangling = match dangling.as_deref() {
            None => None,
            Some([first, rest @ ..]) if rest.iter().all(|v| v == first) => Some(*first),
            Some(_) => {
                return Err(ImageError::InvalidFilter {
                    filter: "dangling".into(),
                })
            }
        };
        let created_of = |name: &String| -> Result<i64, ImageError> {
            let id = self.lookup(name)?;
            Ok(self
                .read_config(&id)?
                .created_time()
                .map_or(0, |t| t.timestamp_nanos_opt().unwrap_or(0)))
        };
        let before = filters.get("before").last().map(created_of).transpose()?;
        let since = filters.get("since").last().map(created_of).transpose()?;
        let patterns = filters.get("reference");
        let labels = filters.get("label");

        let index = self.lock_index()?.clone();
        let meta = self.all_meta();
        let has_children = |id: &str| meta.values().any(|m| m.parent.as_deref() == Some(id));
        let mut images = Vec::new();
        for id in self.image_ids()? {
            let Some(config) = self.try_read_config(&id)? else {
                continue; // removed meanwhile
            };
            let created = config
                .created_time()
                .map_or(0, |t| t.timestamp_nanos_opt().unwrap_or(0));
            if before.is_some_and(|b| created >= b) || since.is_some_and(|s| created <= s) {
                continue;
            }
            let image_labels = config.config.as_ref().and_then(|c| c.labels.clone());
            if !labels
                .iter()
                .all(|l| label_matches(l, image_labels.as_ref()))
            {
                continue;
            }
            let mut tags = Vec::new();
            for reference in index.references_of(&id) {
                if patterns.is_empty() || any_match(patterns, &reference)? {
                    tags.push(reference.familiar_string());
                }
            }
            let digests = index.digests_of(&id);
            let (repo_tags, repo_digests) = if tags.is_empty() && !digests.is_empty() {
                // Pulled by digest: named, not dangling.
                if dangling == Some(true) || !patterns.is_empty() {
                    continue;
                }
                (Vec::new(), Some(digests))
            } else if tags.is_empty() {
                if dangling == Some(false) || !patterns.is_empty() {
                    continue;
                }
                if !all && index.references_of(&id).is_empty() && has_children(&id) {
                    continue;
                }
                (
                    vec!["<none>:<none>".to_string()],
                    Some(vec!["<none>@<none>".to_string()]),
                )
            } else {
                if dangling == Some(true) {
                    continue;
                }
                (tags, (!digests.is_empty()).then_some(digests))
            };
            let size = config
                .rootfs
                .diff_ids
                .iter()
                .map(|d| Ok(self.layers.get(d)?.map_or(0, |l| l.size)))
                .sum::<Result<i64, ImageError>>()?;
            let parent_id = meta
                .get(&id)
                .and_then(|m| m.parent.clone())
                .unwrap_or_default();
            images.push(ImageSummary {
                containers: -1,
                created: config.created_unix(),
                id,
                labels: image_labels,
                parent_id,
                repo_digests,
                repo_tags: Some(repo_tags),
                shared_size: -1,
                size,
                virtual_size: size,
            });
        }
        images.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        Ok(images)
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ImageError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ImageError::InvalidFilter {
            filter: format!("{name}={value}"),
        }),
    }
}

fn any_match(patterns: &[String], reference: &Reference) -> Result<bool, ImageError> {
    for pattern in patterns {
        if familiar_match(pattern, reference)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `label=k` (present) or `label=k=v` (present with that value).
fn label_matches(filter: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
    let Some(labels) = labels else {
        return false;
    };
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(filter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::blob::sha256_digest;
    use crate::image::testutil::{config, legacy_archive, store, SavedImage, TarMaker};
    use crate::ErrorKind;

    struct Fixture {
        _tmp: tempfile::TempDir,
        store: ImageStore,
        old: String,
        mid: String,
        new: String,
    }

    fn fixture() -> Fixture {
        let (tmp, store) = store();
        let base = TarMaker::default().file("bin/sh", b"1234567890").finish();
        let top = TarMaker::default().file("x", b"abc").finish();
        let old = config(&[&base], "old", "2024-01-01T00:00:00Z", &[("tier", "base")]);
        let mid = config(
            &[&base, &top],
            "mid",
            "2024-02-01T00:00:00Z",
            &[("tier", "app"), ("ck", "1")],
        );
        let new = config(&[&top], "new", "2024-03-01T00:00:00Z", &[]);
        let archive = legacy_archive(&[
            SavedImage {
                config: old.clone(),
                layers: vec![&base],
                tags: vec!["busybox:latest", "alpine:3.10"],
            },
            SavedImage {
                config: mid.clone(),
                layers: vec![&base, &top],
                tags: vec!["localhost:5000/app:v1"],
            },
            SavedImage {
                config: new.clone(),
                layers: vec![&top],
                tags: vec![],
            },
        ]);
        store.load(&mut &archive[..]).unwrap();
        Fixture {
            _tmp: tmp,
            store,
            old: sha256_digest(&old),
            mid: sha256_digest(&mid),
            new: sha256_digest(&new),
        }
    }

    fn filters(json: &str) -> Filters {
        Filters::parse(json).unwrap()
    }

    fn ids(list: &[ImageSummary]) -> Vec<&str> {
        list.iter().map(|i| i.id.as_str()).collect()
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn lists_like_dockerd_newest_first() {
        let f = fixture();
        let list = f.store.list(false, &Filters::default()).unwrap();
        assert_eq!(ids(&list), [&f.new, &f.mid, &f.old]);
        let old = &list[2];
        assert_eq!(
            old.repo_tags.as_deref(),
            Some(&["alpine:3.10".to_string(), "busybox:latest".to_string()][..])
        );
        assert_eq!(old.repo_digests, None);
        assert_eq!((old.containers, old.shared_size), (-1, -1));
        assert_eq!(old.parent_id, "");
        assert_eq!(old.created, 1_704_067_200);
        assert_eq!((old.size, old.virtual_size), (10, 10));
        assert_eq!(old.labels.as_ref().unwrap()["tier"], "base");
        let dangling = &list[0];
        assert_eq!(
            dangling.repo_tags.as_deref(),
            Some(&["<none>:<none>".to_string()][..])
        );
        assert_eq!(
            dangling.repo_digests.as_deref(),
            Some(&["<none>@<none>".to_string()][..])
        );
        assert_eq!(dangling.labels, None);
        assert_eq!(list[1].size, 13);
        let json = serde_json::to_value(&list[2]).unwrap();
        assert_eq!(json["RepoDigests"], serde_json::Value::Null);
        assert_eq!(json["Labels"]["tier"], "base");
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn reference_filter_globs_familiar_names() {
        let f = fixture();
        let list = f
            .store
            .list(false, &filters(r#"{"reference":{"busy*":true}}"#))
            .unwrap();
        assert_eq!(ids(&list), [&f.old]);
        assert_eq!(
            list[0].repo_tags.as_deref(),
            Some(&["busybox:latest".to_string()][..]),
            "only matching tags"
        );
        let list = f
            .store
            .list(
                false,
                &filters(r#"{"reference":["alpine:3.10","localhost:5000/*"]}"#),
            )
            .unwrap();
        assert_eq!(ids(&list), [&f.mid, &f.old]);
        assert!(f
            .store
            .list(false, &filters(r#"{"reference":["nothing"]}"#))
            .unwrap()
            .is_empty());
        let e = f
            .store
            .list(false, &filters(r#"{"reference":["["]}"#))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn dangling_label_before_and_since() {
        let f = fixture();
        let list = f
            .store
            .list(false, &filters(r#"{"dangling":["true"]}"#))
            .unwrap();
        assert_eq!(ids(&list), [&f.new]);
        let list = f
            .store
            .list(false, &filters(r#"{"dangling":{"false":true}}"#))
            .unwrap();
        assert_eq!(ids(&list), [&f.mid, &f.old]);
        let list = f
            .store
            .list(false, &filters(r#"{"label":["tier"]}"#))
            .unwrap();
        assert_eq!(ids(&list), [&f.mid, &f.old]);
        let list = f
            .store
            .list(false, &filters(r#"{"label":["tier=app"]}"#))
            .unwrap();
        assert_eq!(ids(&list), [&f.mid]);
        let list = f
            .store
            .list(false, &filters(r#"{"label":["tier=app","ck=2"]}"#))
            .unwrap();
        assert!(list.is_empty(), "every label filter must match");
        let list = f
            .store
            .list(false, &filters(r#"{"before":["localhost:5000/app:v1"]}"#))
            .unwrap();
        assert_eq!(ids(&list), [&f.old]);
        let list = f
            .store
            .list(false, &filters(r#"{"since":["busybox"]}"#))
            .unwrap();
        assert_eq!(ids(&list), [&f.new, &f.mid]);
        let e = f
            .store
            .list(false, &filters(r#"{"since":["nosuch"]}"#))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn bad_filters_are_refused() {
        let f = fixture();
        let e = f
            .store
            .list(false, &filters(r#"{"nope":["x"]}"#))
            .unwrap_err();
        assert_eq!(e.to_string(), "Invalid filter 'nope'");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = f
            .store
            .list(false, &filters(r#"{"dangling":["maybe"]}"#))
            .unwrap_err();
        assert_eq!(e.to_string(), "Invalid filter 'dangling=maybe'");
    }
}
