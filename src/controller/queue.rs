//! The PasswordSafeSecret work queue and the loop that runs reconciles from it.
//!
//! What kube-runtime's `Controller` does (the store controllers still use it): one reconcile of a resource at a
//! time, at most `concurrency` at once, the earliest requested time wins, a resource asked for while its
//! reconcile runs goes again once it ends, nothing starts before the cache has its first listing, and a
//! graceful shutdown lets the running ones finish. The difference is the size of a queue entry. kube's
//! scheduler keeps, for every resource, a `ReconcileRequest` (an `ObjectRef` with room for a UID and a
//! resourceVersion, and a reason) three times over: in a `DelayQueue`, in a map of scheduled times, and in a
//! set of pending requests. Every resource has an entry for as long as the operator runs (its next refresh),
//! and the tables grown by a burst (the cold sync, a store change: all resources at once) never shrink: about
//! 8 MB at 10 000 resources. Here an entry is one shared `namespace/name` text and a time, in a map and an
//! ordered set: about 1.5 MB.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use tokio::time::Instant;

use super::cache::{Cache, Key, key_of};

/// When to reconcile a resource again if nothing asks for it sooner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    After(Duration),
    /// Only when something changes (a watch event, a related object, change detection).
    OnChange,
}

/// Resources and when each is due, in time order.
#[derive(Default)]
struct Queue {
    due: HashMap<Key, Instant>,
    order: BTreeSet<(Instant, Key)>,
}

impl Queue {
    /// Asks for `key` at `at`, unless it is already due sooner.
    fn schedule(&mut self, key: &Key, at: Instant) {
        if let Some(&due) = self.due.get(key) {
            if due <= at {
                return;
            }
            self.order.remove(&(due, key.clone()));
        }
        self.due.insert(key.clone(), at);
        self.order.insert((at, key.clone()));
    }

    /// When the first entry is due.
    fn next_due(&self) -> Option<Instant> {
        self.order.first().map(|(at, _)| *at)
    }

    /// The first entry, if it is due by `now`, taken out of the queue.
    fn pop_due(&mut self, now: Instant) -> Option<Key> {
        if self.next_due()? > now {
            return None;
        }
        let (_, key) = self.order.pop_first()?;
        self.due.remove(&key);
        Some(key)
    }

    fn len(&self) -> usize {
        self.due.len()
    }
}

/// Runs `reconcile` for the resources that `triggers` names (at once) and for those whose last reconcile asked
/// to go again (at the time it asked), reading each from `cache` when its turn comes: a resource no longer in
/// the cache is skipped. Returns once `shutdown` has resolved and the running reconciles have ended
/// (`concurrency` 0: no limit).
pub async fn run<K, F, Fut>(
    cache: Arc<Cache<K>>,
    triggers: impl Stream<Item = ObjectRef<K>>,
    concurrency: usize,
    shutdown: impl Future<Output = ()>,
    reconcile: F,
) where
    K: Resource + Clone,
    K::DynamicType: Default,
    F: Fn(Arc<K>) -> Fut,
    Fut: Future<Output = Next>,
{
    let limit = if concurrency == 0 { usize::MAX } else { concurrency };
    let mut queue = Queue::default();
    let mut running: HashSet<Key> = HashSet::new();
    // Asked for while running: goes again as soon as the running reconcile ends.
    let mut again: HashSet<Key> = HashSet::new();
    let mut in_flight = FuturesUnordered::new();
    let triggers = triggers.fuse();
    let ready = cache.wait_until_listed().fuse();
    let shutdown = shutdown.fuse();
    futures::pin_mut!(triggers, ready, shutdown);
    let (mut is_ready, mut stopping, mut triggers_ended) = (false, false, false);
    loop {
        if is_ready && !stopping {
            let now = Instant::now();
            while in_flight.len() < limit {
                let Some(key) = queue.pop_due(now) else { break };
                if running.contains(&key) {
                    again.insert(key);
                    continue;
                }
                // Deleted since it was queued: the watch's delete event has cleared what we kept of it.
                let Some((_, object)) = cache.get(&key) else { continue };
                running.insert(key.clone());
                in_flight.push(reconcile(object).map(move |next| (key, next)));
            }
        }
        if stopping && in_flight.is_empty() {
            return;
        }
        let wake = queue.next_due().filter(|_| is_ready && !stopping && in_flight.len() < limit);
        tokio::select! {
            trigger = triggers.next(), if !triggers_ended && !stopping => match trigger {
                // A resource not (yet) in the cache is news to it when it arrives: the watch asks for it then.
                Some(object) => if let Some((key, _)) = cache.get(&key_of(&object)) {
                    queue.schedule(&key, Instant::now());
                },
                None => triggers_ended = true,
            },
            Some((key, next)) = in_flight.next(), if !in_flight.is_empty() => {
                running.remove(&key);
                let now = Instant::now();
                if again.remove(&key) {
                    queue.schedule(&key, now);
                }
                if let Next::After(delay) = next {
                    queue.schedule(&key, now + delay);
                }
            }
            () = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
            () = &mut ready, if !is_ready => {
                is_ready = true;
                tracing::debug!(cached = cache.len(), queued = queue.len(), "cache listed: reconciles start");
            }
            () = &mut shutdown, if !stopping => {
                tracing::debug!(running = in_flight.len(), queued = queue.len(), "shutting down: letting running reconciles finish");
                stopping = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher;
    use tokio::sync::{Notify, mpsc, oneshot};
    use tokio::task::JoinHandle;

    use super::*;

    fn config_map(namespace: &str, name: &str) -> ConfigMap {
        let mut object = ConfigMap::default();
        object.metadata.namespace = Some(namespace.into());
        object.metadata.name = Some(name.into());
        object
    }

    fn listed(cache: &Cache<ConfigMap>, objects: &[ConfigMap]) {
        cache.apply(watcher::Event::Init, |_| 0);
        for object in objects {
            cache.apply(watcher::Event::InitApply(object.clone()), |_| 0);
        }
        cache.apply(watcher::Event::InitDone, |_| 0);
    }

    fn trigger(tx: &mpsc::UnboundedSender<ObjectRef<ConfigMap>>, name: &str) {
        tx.send(ObjectRef::new(name).within("ns")).unwrap();
    }

    #[test]
    fn the_earliest_request_wins_and_entries_come_out_in_time_order() {
        let mut queue = Queue::default();
        let t0 = Instant::now();
        let (a, b) = (Key::from("ns/a"), Key::from("ns/b"));
        queue.schedule(&b, t0 + Duration::from_secs(5));
        queue.schedule(&a, t0 + Duration::from_secs(10));
        queue.schedule(&a, t0 + Duration::from_secs(2));
        queue.schedule(&b, t0 + Duration::from_secs(60));
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.next_due(), Some(t0 + Duration::from_secs(2)));
        assert_eq!(queue.pop_due(t0 + Duration::from_secs(1)), None);
        assert_eq!(queue.pop_due(t0 + Duration::from_secs(30)).as_deref(), Some("ns/a"));
        assert_eq!(queue.pop_due(t0 + Duration::from_secs(30)).as_deref(), Some("ns/b"));
        assert_eq!(queue.pop_due(t0 + Duration::from_secs(30)), None);
        assert_eq!((queue.len(), queue.order.len()), (0, 0));
    }

    /// Reconciles record the names they ran with and the most that ran at once; each waits for `release`.
    #[derive(Default)]
    struct Probe {
        ran: Mutex<Vec<String>>,
        running: Mutex<(usize, usize)>,
        release: Notify,
    }

    impl Probe {
        async fn reconcile(&self, object: Arc<ConfigMap>, next: Next) -> Next {
            {
                let mut running = self.running.lock().unwrap();
                running.0 += 1;
                running.1 = running.1.max(running.0);
            }
            self.ran.lock().unwrap().push(object.metadata.name.clone().unwrap());
            self.release.notified().await;
            self.running.lock().unwrap().0 -= 1;
            next
        }

        fn ran(&self) -> Vec<String> {
            self.ran.lock().unwrap().clone()
        }

        async fn wait_for_runs(&self, count: usize) {
            for _ in 0..1000 {
                if self.ran.lock().unwrap().len() >= count {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("{count} runs expected, saw {:?}", self.ran());
        }
    }

    /// A runner over `cache` with `concurrency`, whose reconciles go through `probe` and answer `next`: its
    /// trigger sender, its shutdown sender and its task.
    fn start(
        cache: Arc<Cache<ConfigMap>>,
        probe: &Arc<Probe>,
        concurrency: usize,
        next: Next,
    ) -> (mpsc::UnboundedSender<ObjectRef<ConfigMap>>, oneshot::Sender<()>, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let probe = probe.clone();
        let runner = tokio::spawn(run(
            cache,
            crate::controller::tokio_stream_shim::UnboundedReceiverStream(rx),
            concurrency,
            async move {
                let _ = stop_rx.await;
            },
            move |object| {
                let probe = probe.clone();
                async move { probe.reconcile(object, next).await }
            },
        ));
        (tx, stop_tx, runner)
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_runs_before_the_first_listing_and_deleted_resources_are_skipped() {
        let cache = Arc::new(Cache::default());
        let probe = Arc::new(Probe::default());
        let (tx, stop_tx, runner) = start(cache.clone(), &probe, 4, Next::OnChange);
        // Listed in part: "a" is cached, the listing is not complete.
        cache.apply(watcher::Event::Init, |_| 0);
        cache.apply(watcher::Event::InitApply(config_map("ns", "a")), |_| 0);
        trigger(&tx, "a");
        trigger(&tx, "gone");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(probe.ran().is_empty(), "ran before the cache was listed");
        cache.apply(watcher::Event::InitDone, |_| 0);
        probe.wait_for_runs(1).await;
        probe.release.notify_waiters();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(probe.ran(), ["a"]);
        stop_tx.send(()).unwrap();
        runner.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn one_run_per_resource_at_a_time_within_the_limit_then_again_if_asked_meanwhile() {
        let cache = Arc::new(Cache::default());
        listed(&cache, &[config_map("ns", "a"), config_map("ns", "b"), config_map("ns", "c")]);
        let probe = Arc::new(Probe::default());
        let (tx, stop_tx, runner) = start(cache, &probe, 2, Next::OnChange);
        trigger(&tx, "a");
        probe.wait_for_runs(1).await;
        // Asked for again while it runs, with a slot free (twice: one more run, not two).
        trigger(&tx, "a");
        trigger(&tx, "a");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(probe.ran(), ["a"], "ran twice at once");
        trigger(&tx, "b");
        trigger(&tx, "c");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(probe.ran().len(), 2, "{:?}", probe.ran());
        for _ in 0..3 {
            probe.release.notify_waiters();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut ran = probe.ran();
        ran.sort();
        assert_eq!(ran, ["a", "a", "b", "c"]);
        assert_eq!(probe.running.lock().unwrap().1, 2, "more than the limit ran at once");
        stop_tx.send(()).unwrap();
        runner.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_requeue_runs_at_its_time_and_shutdown_waits_for_the_running_reconcile() {
        let cache = Arc::new(Cache::default());
        listed(&cache, &[config_map("ns", "a")]);
        let probe = Arc::new(Probe::default());
        let (tx, stop_tx, runner) = start(cache, &probe, 2, Next::After(Duration::from_secs(30)));
        trigger(&tx, "a");
        probe.wait_for_runs(1).await;
        probe.release.notify_waiters();
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(probe.ran().len(), 1);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(probe.ran().len(), 2, "the requeue did not run");
        // Shutdown while the second run is in progress: the runner waits for it.
        stop_tx.send(()).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!runner.is_finished(), "returned with a reconcile still running");
        probe.release.notify_waiters();
        runner.await.unwrap();
        assert_eq!(probe.ran().len(), 2);
    }
}
