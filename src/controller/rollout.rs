//! Rollout restarts: when the synced data changes, the workloads that read it restart, the way
//! `kubectl rollout restart` does it, by stamping their pod template with an annotation.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;

use super::reconcile::{Context, publish};
use crate::api::{PasswordSafeSecret, WorkloadKind};

/// Pod-template annotation written on restart.
pub const RESTARTED_AT: &str = "passwordsafe.dev/restartedAt";

/// Restarts every target; each outcome is reported as its own event, and one failure does not stop the rest.
pub async fn restart(ctx: &Context, pss: &PasswordSafeSecret) {
    let namespace = pss.namespace().unwrap_or_default();
    let stamp = Timestamp::now().to_string();
    let patch = json!({ "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: stamp } } } } });
    for target in &pss.spec.rollout_restart_targets {
        let params = PatchParams::default();
        let result = match target.kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(ctx.kube.clone(), &namespace)
                .patch(&target.name, &params, &Patch::Merge(&patch))
                .await
                .map(drop),
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(ctx.kube.clone(), &namespace)
                .patch(&target.name, &params, &Patch::Merge(&patch))
                .await
                .map(drop),
            WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(ctx.kube.clone(), &namespace)
                .patch(&target.name, &params, &Patch::Merge(&patch))
                .await
                .map(drop),
        };
        let (type_, reason, note) = match result {
            Ok(()) => (
                EventType::Normal,
                "RolloutRestart",
                format!("restarted {:?} {} after the synced data changed", target.kind, target.name),
            ),
            Err(e) => (
                EventType::Warning,
                "RolloutRestartFailed",
                format!("could not restart {:?} {}: {e}", target.kind, target.name),
            ),
        };
        publish(ctx, pss, type_, reason, "RolloutRestart", note).await;
    }
}
