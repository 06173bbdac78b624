//! Coalesces concurrent calls for the same key into one piece of work.
//!
//! The work runs in its own task, so it always finishes (and checks its request in) even when every caller
//! that asked for it has gone away. Later callers that arrive while it runs share its result; a caller that
//! arrives after it finished starts fresh work.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use super::error::{Error, ErrorKind, Result};

type Flight<V> = Shared<BoxFuture<'static, Result<V>>>;

pub(crate) struct SingleFlight<K, V> {
    inflight: Arc<Mutex<HashMap<K, Flight<V>>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self { inflight: Arc::default() }
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub async fn run<F>(&self, key: K, work: F) -> Result<V>
    where
        F: Future<Output = Result<V>> + Send + 'static,
    {
        let flight = {
            // Spawning and inserting under the lock: the task's own removal waits for the insert, so a finished
            // flight can never be left behind in the map.
            let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
            match inflight.get(&key) {
                Some(flight) => flight.clone(),
                None => {
                    let map = self.inflight.clone();
                    let own_key = key.clone();
                    let task = tokio::spawn(async move {
                        let result = work.await;
                        map.lock().unwrap_or_else(PoisonError::into_inner).remove(&own_key);
                        result
                    });
                    let flight = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(Error::new("retrieve", ErrorKind::Aborted(format!("retrieval task failed: {e}"))))
                        })
                    }
                    .boxed()
                    .shared();
                    inflight.insert(key, flight.clone());
                    flight
                }
            }
        };
        flight.await
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inflight.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_run_and_later_callers_start_anew() {
        let flights: Arc<SingleFlight<&'static str, u32>> = Arc::default();
        let runs = Arc::new(AtomicU32::new(0));
        let work = |runs: Arc<AtomicU32>| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(runs.fetch_add(1, Ordering::SeqCst) + 1)
        };
        let callers: Vec<_> = (0..20)
            .map(|_| {
                let (f, r) = (flights.clone(), runs.clone());
                tokio::spawn(async move { f.run("a", work(r)).await })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap(), 1);
        }
        assert_eq!(flights.len(), 0);
        assert_eq!(flights.run("a", work(runs.clone())).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn work_finishes_even_when_every_caller_is_cancelled() {
        let flights: Arc<SingleFlight<u8, ()>> = Arc::default();
        let done = Arc::new(AtomicU32::new(0));
        let d = done.clone();
        let caller = tokio::spawn({
            let flights = flights.clone();
            async move {
                flights
                    .run(1, async move {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        d.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        caller.abort();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert_eq!(flights.len(), 0);
    }
}
