//! `docker image prune` and `docker builder prune`, as dockerd chooses what goes.
//!
//! Image prune looks at dangling images (untagged, and no other image made from them), or
//! with `dangling=false` (`-a`) at every image nothing was made from; `until` and `label`
//! narrow that. Each goes as `rmi` would take it (tags first, then the image and the
//! untagged parents nothing else needs), and an image a container uses stays. Builder prune
//! drops the build cache: images build steps made that no tagged image is made from.

use std::collections::{HashMap, HashSet};

use api_types::filters::Filters;
use api_types::{BuildCachePruneResponse, ImageDeleteItem, ImagesPruneResponse};

use super::error::ImageError;
use super::ImageStore;

const FILTERS: [&str; 4] = ["dangling", "label", "label!", "until"];

/// An `until` filter as dockerd reads it: Unix seconds (with fractions), RFC 3339, a date,
/// or a duration back from now (`24h`, `10m`). Unix seconds come back.
pub fn parse_until(text: &str, now: i64) -> Option<i64> {
    if let Ok(secs) = text.parse::<f64>() {
        return Some(secs as i64);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S") {
        return Some(t.and_utc().timestamp());
    }
    api_types::duration::parse_go_duration(text).map(|d| now - d.as_secs() as i64)
}

/// Whether labels match every `label=` filter and no `label!=` one.
pub(crate) fn labels_match(
    filters: &Filters,
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> bool {
    let has = |f: &str| match (f.split_once('='), labels) {
        (_, None) => false,
        (Some((k, v)), Some(l)) => l.get(k).is_some_and(|have| have == v),
        (None, Some(l)) => l.contains_key(f),
    };
    filters.get("label").iter().all(|f| has(f)) && !filters.get("label!").iter().any(|f| has(f))
}

impl ImageStore {
    /// `POST /images/prune`. `users(image_id)` lists the containers using an image.
    pub fn prune(
        &self,
        filters: &Filters,
        users: &dyn Fn(&str) -> Vec<(String, bool)>,
    ) -> Result<ImagesPruneResponse, ImageError> {
        if let Some(unknown) = filters.0.keys().find(|k| !FILTERS.contains(&k.as_str())) {
            return Err(ImageError::InvalidFilter {
                filter: unknown.clone(),
            });
        }
        let dangling_only = match filters.get("dangling").last().map(String::as_str) {
            None | Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(other) => {
                return Err(ImageError::InvalidFilter {
                    filter: format!("dangling={other}"),
                })
            }
        };
        let now = chrono::Utc::now().timestamp();
        let until = match filters.get("until").last() {
            Some(u) => Some(
                parse_until(u, now).ok_or_else(|| ImageError::InvalidFilter {
                    filter: format!("until={u}"),
                })?,
            ),
            None => None,
        };
        let before = self.layer_bytes();
        let meta = self.all_meta();
        let parents: HashSet<String> = meta.values().filter_map(|m| m.parent.clone()).collect();
        let index = self.lock_index()?.clone();
        let mut deleted: Vec<ImageDeleteItem> = Vec::new();
        for id in self.image_ids()? {
            let refs = index.references_of(&id);
            if parents.contains(&id) && (dangling_only || refs.is_empty()) {
                continue;
            }
            if dangling_only && !refs.is_empty() {
                continue;
            }
            let Some(config) = self.try_read_config(&id)? else {
                continue;
            };
            if until.is_some_and(|u| config.created_unix() >= u) {
                continue;
            }
            let labels = config.config.as_ref().and_then(|c| c.labels.as_ref());
            if !labels_match(filters, labels) {
                continue;
            }
            if refs.is_empty() {
                match self.remove_with(&id, false, true, users) {
                    Ok(items) => deleted.extend(items),
                    Err(e) => {
                        tracing::debug!(image = %id, error = %crate::error::Chain(&e), "not pruned")
                    }
                }
            } else {
                for r in refs {
                    match self.remove_with(&r.familiar_string(), false, true, users) {
                        Ok(items) => deleted.extend(items),
                        Err(e) => {
                            tracing::debug!(image = %id, error = %crate::error::Chain(&e), "not pruned")
                        }
                    }
                }
            }
        }
        Ok(ImagesPruneResponse {
            images_deleted: (!deleted.is_empty()).then_some(deleted),
            space_reclaimed: (before - self.layer_bytes()).max(0),
        })
    }

    /// The bytes of every layer in the store.
    pub(crate) fn layer_bytes(&self) -> i64 {
        self.layers
            .all()
            .map(|ls| ls.iter().map(|l| l.size).sum())
            .unwrap_or(0)
    }

    /// The build cache: images build steps made, with whether a tagged image (or a container,
    /// per `in_use`) still needs each, and the bytes of each one's own layer.
    pub fn build_cache(
        &self,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<CacheEntry>, ImageError> {
        let meta = self.all_meta();
        let index = self.lock_index()?.clone();
        let tagged: HashSet<&String> = index.tags.values().collect();
        // Images whose descendants include a tagged image or a container's image.
        let mut needed: HashSet<String> = HashSet::new();
        for id in meta.keys().chain(tagged.iter().copied()) {
            if !(tagged.contains(id) || in_use(id)) {
                continue;
            }
            let mut cur = Some(id.clone());
            while let Some(c) = cur {
                if !needed.insert(c.clone()) {
                    break;
                }
                cur = meta.get(&c).and_then(|m| m.parent.clone());
            }
        }
        let mut entries = Vec::new();
        let mut layer_sizes: HashMap<String, i64> = HashMap::new();
        for (id, m) in &meta {
            let Some(key) = &m.build_key else { continue };
            let Some(config) = self.try_read_config(id)? else {
                continue;
            };
            let parent_layers = match &m.parent {
                Some(p) => self
                    .try_read_config(p)?
                    .map_or(0, |c| c.rootfs.diff_ids.len()),
                None => 0,
            };
            let own: i64 = config.rootfs.diff_ids
                [parent_layers.min(config.rootfs.diff_ids.len())..]
                .iter()
                .map(|d| {
                    *layer_sizes
                        .entry(d.clone())
                        .or_insert_with(|| self.layers.get(d).ok().flatten().map_or(0, |l| l.size))
                })
                .sum();
            entries.push(CacheEntry {
                id: id.clone(),
                parent: m.parent.clone(),
                description: key.clone(),
                in_use: needed.contains(id),
                size: own,
                created: config.created_string(),
                last_used: m.last_used.clone(),
            });
        }
        entries.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        Ok(entries)
    }

    /// `POST /build/prune`: deletes the build cache no tagged image or container needs
    /// (with `all`, every entry nothing tagged is made from too; `until` narrows).
    pub fn prune_build_cache(
        &self,
        filters: &Filters,
        in_use: &dyn Fn(&str) -> bool,
        users: &dyn Fn(&str) -> Vec<(String, bool)>,
    ) -> Result<BuildCachePruneResponse, ImageError> {
        let now = chrono::Utc::now().timestamp();
        let until = filters
            .get("until")
            .last()
            .and_then(|u| parse_until(u, now));
        let before = self.layer_bytes();
        let mut deleted = Vec::new();
        // Leaves first, so that parents become leaves in turn.
        loop {
            let entries = self.build_cache(in_use)?;
            let parents: HashSet<String> = self
                .all_meta()
                .values()
                .filter_map(|m| m.parent.clone())
                .collect();
            let mut progressed = false;
            for e in entries
                .iter()
                .filter(|e| !e.in_use && !parents.contains(&e.id))
            {
                if let Some(u) = until {
                    let created = chrono::DateTime::parse_from_rfc3339(&e.created)
                        .map_or(0, |t| t.timestamp());
                    if created >= u {
                        continue;
                    }
                }
                let _gc = self.gc_exclusive()?;
                if !self.lock_index()?.references_of(&e.id).is_empty() || !users(&e.id).is_empty() {
                    continue;
                }
                let mut records = Vec::new();
                self.delete_unused(&e.id, &mut records)?;
                deleted.push(e.id.clone());
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        Ok(BuildCachePruneResponse {
            caches_deleted: (!deleted.is_empty()).then_some(deleted),
            space_reclaimed: (before - self.layer_bytes()).max(0),
        })
    }
}

/// One entry of the build cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub id: String,
    pub parent: Option<String>,
    /// The step that made it.
    pub description: String,
    /// A tagged image or a container needs it.
    pub in_use: bool,
    /// Bytes of its own layer (0 for a step that changed no file).
    pub size: i64,
    pub created: String,
    pub last_used: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::commit::ChildImage;
    use crate::image::testutil::{config, legacy_archive, store, SavedImage, TarMaker};
    use crate::image::Reference;

    #[test]
    fn until_reads_dockers_forms() {
        assert_eq!(parse_until("1795790184.5", 0), Some(1795790184));
        assert_eq!(parse_until("1970-01-01T00:01:00Z", 0), Some(60));
        assert_eq!(parse_until("1970-01-02", 0), Some(86400));
        assert_eq!(parse_until("1h", 7200), Some(3600));
        assert_eq!(parse_until("soon", 0), None);
    }

    #[test]
    fn dangling_then_all_and_labels() {
        let (_tmp, store) = store();
        let base = TarMaker::default().file("bin/sh", b"sh").finish();
        let other = TarMaker::default().file("bin/other", b"other").finish();
        let a = config(&[&base], "sh", "2024-01-01T00:00:00Z", &[("keep", "yes")]);
        let b = config(&[&other], "sh", "2024-01-02T00:00:00Z", &[]);
        let archive = legacy_archive(&[
            SavedImage {
                config: a,
                layers: vec![&base],
                tags: vec!["a:1"],
            },
            SavedImage {
                config: b,
                layers: vec![&other],
                tags: vec!["b:1"],
            },
        ]);
        let loaded = store.load(&mut &archive[..]).unwrap();
        let (a_id, b_id) = (loaded[0].id.clone(), loaded[1].id.clone());
        // A build-step chain on a: an untagged intermediate and an untagged leaf.
        let step = |parent: &str, file: &str| {
            let tar = TarMaker::default().file(file, b"x").finish();
            store
                .create_child(ChildImage {
                    parent: Some(parent.to_string()),
                    layer: Some(&mut &tar[..]),
                    build_key: Some(format!("COPY {file}")),
                    ..Default::default()
                })
                .unwrap()
        };
        let mid = step(&a_id, "m");
        let leaf = step(&mid, "l");
        let nobody = |_: &str| Vec::new();
        let none = Filters::default();
        let r = store.prune(&none, &nobody).unwrap();
        let deleted = r.images_deleted.unwrap();
        assert!(deleted.contains(&ImageDeleteItem::Deleted(leaf.clone())));
        assert!(
            deleted.contains(&ImageDeleteItem::Deleted(mid.clone())),
            "parents go too: {deleted:?}"
        );
        assert!(r.space_reclaimed > 0);
        assert_eq!(store.count(), 2);
        // -a with a label! filter: only b goes.
        let f =
            Filters::parse(r#"{"dangling":{"false":true},"label!":{"keep=yes":true}}"#).unwrap();
        let r = store.prune(&f, &nobody).unwrap();
        let deleted = r.images_deleted.unwrap();
        assert!(deleted.contains(&ImageDeleteItem::Untagged("b:1".into())));
        assert!(deleted.contains(&ImageDeleteItem::Deleted(b_id)));
        assert!(store.inspect("a:1").is_ok());
        // A container keeps an image.
        let user = |id: &str| {
            if id == a_id {
                vec![("c".to_string(), false)]
            } else {
                vec![]
            }
        };
        let f = Filters::parse(r#"{"dangling":{"false":true}}"#).unwrap();
        assert!(store.prune(&f, &user).unwrap().images_deleted.is_none());
        let bad = Filters::parse(r#"{"color":{"red":true}}"#).unwrap();
        assert_eq!(
            store.prune(&bad, &nobody).unwrap_err().to_string(),
            "Invalid filter 'color'"
        );
    }

    #[test]
    fn builder_prune_keeps_what_tagged_images_need() {
        let (_tmp, store) = store();
        let mk = |parent: Option<String>, file: &str, tag: Option<&str>| {
            let tar = TarMaker::default().file(file, b"data").finish();
            store
                .create_child(ChildImage {
                    parent,
                    layer: Some(&mut &tar[..]),
                    build_key: Some(format!("COPY {file}")),
                    tags: tag
                        .map(|t| Reference::parse_normalized(t).unwrap())
                        .into_iter()
                        .collect(),
                    ..Default::default()
                })
                .unwrap()
        };
        let root = mk(None, "a", None);
        let kept = mk(Some(root.clone()), "b", Some("app:1"));
        let stale = mk(Some(root.clone()), "c", None);
        let never = |_: &str| false;
        let entries = store.build_cache(&never).unwrap();
        assert_eq!(entries.len(), 3);
        assert!(entries.iter().find(|e| e.id == root).unwrap().in_use);
        assert!(!entries.iter().find(|e| e.id == stale).unwrap().in_use);
        let r = store
            .prune_build_cache(&Filters::default(), &never, &|_: &str| Vec::new())
            .unwrap();
        assert_eq!(r.caches_deleted, Some(vec![stale]));
        assert!(r.space_reclaimed > 0);
        assert!(store.inspect(&kept).is_ok() && store.inspect(&root).is_ok());
    }
}
