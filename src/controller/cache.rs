//! The cache of PasswordSafeSecrets that reconciles read, fed by their watch, keyed by `namespace/name`.
//!
//! In place of kube-runtime's reflector store, for two reasons that matter at 10 000 resources. kube keys each
//! object by a full `ObjectRef` (name, namespace, UID and resourceVersion: four strings) and, when the watch lists
//! again after losing its place, builds a second complete map beside the first and swaps them at the end: a
//! re-list doubled the cache for its duration. Here an entry is the object, one shared key text (the queue
//! uses the same allocation) and two numbers; a re-list updates entries in place and then drops those it did
//! not see (deleted while the watch was away, which no delete event reports). The same pass tells which
//! objects are worth a reconcile (new, or changed in what the caller's digest covers), which took a map of
//! its own beside kube's store.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tokio::sync::watch;

pub struct Cache<K> {
    state: RwLock<State<K>>,
    /// Whether the first listing is complete.
    listed: watch::Sender<bool>,
}

struct State<K> {
    objects: HashMap<Key, Entry<K>>,
    /// Counts the watch's listings; an entry not seen by the current one is dropped when it completes.
    listing: u32,
}

struct Entry<K> {
    object: Arc<K>,
    listing: u32,
    digest: u64,
}

/// What one watch event changed.
pub struct Applied<K: Resource> {
    /// An object that is new, or whose digest changed.
    pub changed: Option<ObjectRef<K>>,
    /// Objects that are gone: deleted, or missing from a new listing.
    pub gone: Vec<Arc<K>>,
}

impl<K: Resource> Default for Applied<K> {
    fn default() -> Self {
        Self { changed: None, gone: Vec::new() }
    }
}

/// A resource in the cache and the queue: `namespace/name` (neither may contain a `/`), one allocation shared
/// by the cache's map and the queue's map and ordered set (see [`Cache::get`]).
pub type Key = Arc<str>;

/// The key text of an object reference.
pub fn key_of<K: Resource>(object: &ObjectRef<K>) -> String {
    format!("{}/{}", object.namespace.as_deref().unwrap_or_default(), object.name)
}

/// The key text of an object.
pub fn key_text<K: Resource>(object: &K) -> String {
    let meta = object.meta();
    format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())
}

impl<K> Default for Cache<K> {
    fn default() -> Self {
        Self { state: RwLock::new(State { objects: HashMap::new(), listing: 0 }), listed: watch::Sender::new(false) }
    }
}

impl<K> Cache<K>
where
    K: Resource + Clone,
    K::DynamicType: Default,
{
    /// Applies one watch event. `digest` covers what makes a change worth a reconcile; the object's UID is
    /// added to it (a resource deleted and created again under the same name is new).
    pub fn apply(&self, event: watcher::Event<K>, digest: impl Fn(&K) -> u64) -> Applied<K> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Init => {
                state.listing = state.listing.wrapping_add(1);
                Applied::default()
            }
            watcher::Event::InitApply(object) | watcher::Event::Apply(object) => {
                let digest = super::compact::digest(&(object.meta().uid.as_deref(), digest(&object)));
                let key = key_text(&object);
                // A copy has the exact sizes; the decoded object's lists have the slack they grew with while
                // being read (room for four data items where there are one or two): 2 MB more at 10 000.
                let object = object.clone();
                let listing = state.listing;
                let changed = match state.objects.get_mut(key.as_str()) {
                    Some(entry) => {
                        let changed = entry.digest != digest;
                        *entry = Entry { object: Arc::new(object), listing, digest };
                        changed
                    }
                    None => {
                        state
                            .objects
                            .insert(Key::from(key.as_str()), Entry { object: Arc::new(object), listing, digest });
                        true
                    }
                };
                Applied { changed: changed.then(|| object_ref(&key)), gone: Vec::new() }
            }
            watcher::Event::InitDone => {
                let listing = state.listing;
                let mut gone = Vec::new();
                state.objects.retain(|_, entry| {
                    let seen = entry.listing == listing;
                    if !seen {
                        gone.push(entry.object.clone());
                    }
                    seen
                });
                drop(state);
                self.listed.send_replace(true);
                Applied { changed: None, gone }
            }
            watcher::Event::Delete(object) => {
                let removed = state.objects.remove(key_text(&object).as_str());
                Applied { changed: None, gone: removed.map(|entry| entry.object).into_iter().collect() }
            }
        }
    }

    /// The object under `key`, with the key's shared allocation.
    pub fn get(&self, key: &str) -> Option<(Key, Arc<K>)> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.objects.get_key_value(key).map(|(key, entry)| (key.clone(), entry.object.clone()))
    }

    /// The cached objects for which `wanted` holds.
    pub fn select(&self, wanted: impl Fn(&K) -> bool) -> Vec<ObjectRef<K>> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.objects.iter().filter(|(_, entry)| wanted(&entry.object)).map(|(key, _)| object_ref(key)).collect()
    }

    /// Resolves once the first listing is complete.
    pub async fn wait_until_listed(&self) {
        let mut listed = self.listed.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail while we hold it.
        let _ = listed.wait_for(|listed| *listed).await;
    }

    pub fn len(&self) -> usize {
        self.state.read().unwrap_or_else(PoisonError::into_inner).objects.len()
    }
}

/// The `ObjectRef` of a `namespace/name` key.
pub fn object_ref<K: Resource>(key: &str) -> ObjectRef<K>
where
    K::DynamicType: Default,
{
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    let object = ObjectRef::new(name);
    if namespace.is_empty() { object } else { object.within(namespace) }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    fn config_map(name: &str, uid: &str, data: &str) -> ConfigMap {
        let mut object = ConfigMap::default();
        object.metadata.namespace = Some("ns".into());
        object.metadata.name = Some(name.into());
        object.metadata.uid = Some(uid.into());
        object.data = Some([("k".to_owned(), data.to_owned())].into());
        object
    }

    /// What a reconcile is worth here: the data.
    fn data(object: &ConfigMap) -> u64 {
        super::super::compact::digest(&object.data)
    }

    fn changed(cache: &Cache<ConfigMap>, event: watcher::Event<ConfigMap>) -> Option<String> {
        cache.apply(event, data).changed.map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
    }

    fn names(objects: &[Arc<ConfigMap>]) -> Vec<String> {
        objects.iter().map(|o| o.metadata.name.clone().unwrap()).collect()
    }

    #[test]
    fn keys_name_namespace_and_name() {
        let object: ObjectRef<ConfigMap> = ObjectRef::new("app").within("team-a");
        assert_eq!(key_of(&object), "team-a/app");
        assert_eq!(key_text(&config_map("app", "u", "x")), "ns/app");
        assert_eq!(object_ref::<ConfigMap>("team-a/app"), object);
    }

    #[test]
    fn new_and_changed_objects_are_news_and_repeats_are_not() {
        let cache = Cache::default();
        assert_eq!(changed(&cache, watcher::Event::Apply(config_map("a", "u1", "x"))).as_deref(), Some("ns/a"));
        assert_eq!(changed(&cache, watcher::Event::Apply(config_map("a", "u1", "x"))), None);
        assert_eq!(changed(&cache, watcher::Event::Apply(config_map("a", "u1", "y"))).as_deref(), Some("ns/a"));
        // Deleted and created again under the same name while the watch was away: new.
        assert_eq!(changed(&cache, watcher::Event::Apply(config_map("a", "u2", "y"))).as_deref(), Some("ns/a"));
        let (key, object) = cache.get("ns/a").unwrap();
        assert_eq!((&*key, object.metadata.uid.as_deref()), ("ns/a", Some("u2")));
        let gone = cache.apply(watcher::Event::Delete(config_map("a", "u2", "y")), data).gone;
        assert_eq!(names(&gone), ["a"]);
        assert!(cache.get("ns/a").is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_new_listing_updates_in_place_and_drops_what_it_did_not_see() {
        let cache = Cache::default();
        cache.apply(watcher::Event::Init, data);
        for name in ["a", "b", "c"] {
            assert!(cache.apply(watcher::Event::InitApply(config_map(name, name, "x")), data).changed.is_some());
        }
        assert!(cache.apply(watcher::Event::InitDone, data).gone.is_empty());
        // The watch lost its place: "b" was deleted meanwhile and "c" changed.
        cache.apply(watcher::Event::Init, data);
        assert_eq!(changed(&cache, watcher::Event::InitApply(config_map("a", "a", "x"))), None);
        assert_eq!(changed(&cache, watcher::Event::InitApply(config_map("c", "c", "z"))).as_deref(), Some("ns/c"));
        assert_eq!(cache.len(), 3, "the previous listing stays readable until the new one completes");
        let gone = cache.apply(watcher::Event::InitDone, data).gone;
        assert_eq!(names(&gone), ["b"]);
        let mut cached = cache.select(|_| true).into_iter().map(|r| r.name).collect::<Vec<_>>();
        cached.sort();
        assert_eq!(cached, ["a", "c"]);
        assert_eq!(cache.select(|o| o.metadata.name.as_deref() == Some("c")).len(), 1);
    }

    #[tokio::test]
    async fn listed_once_the_first_listing_completes() {
        let cache = Arc::new(Cache::<ConfigMap>::default());
        cache.apply(watcher::Event::Init, data);
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.wait_until_listed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        cache.apply(watcher::Event::InitDone, data);
        waiting.await.unwrap();
    }
}
