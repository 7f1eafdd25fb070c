//! The peercache quickstart: one group on one node, then a three-node cluster
//! in one process, printing what was loaded where and the stats.
//!
//! Run it with `cargo run --example quickstart`.

use peercache::in_process::InProcessNetwork;
use peercache::{loader_fn, LoadError, Node};
use std::time::Duration;

/// The "database": slow, so the cache is worth having.
async fn lookup_color(name: &str) -> Option<&'static str> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    match name {
        "red" => Some("#FF0000"),
        "green" => Some("#00FF00"),
        "blue" => Some("#0000FF"),
        "white" => Some("#FFFFFF"),
        "black" => Some("#000000"),
        _ => None,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. One node, one group: a miss runs the loader, a repeat is a hit.
    let node = Node::new();
    let colors = node.new_group(
        "colors",
        64 << 20,
        loader_fn(|name: String| async move {
            println!("  loader: looking up {name:?}");
            lookup_color(&name).await.ok_or(LoadError::NotFound)
        }),
    )?;
    println!("single node:");
    for name in ["red", "green", "red", "red", "mauve"] {
        match colors.get(name).await {
            Ok(value) => println!("  get {name:?} -> {}", value.as_str()?),
            Err(error) => println!("  get {name:?} -> error: {error}"),
        }
    }
    println!("  stats: {}", serde_json::to_string(&colors.stats())?);

    // 2. Three nodes: every key has one owner, and only the owner loads it.
    println!("\nthree nodes in one process:");
    let peers = ["node-a", "node-b", "node-c"];
    let network = InProcessNetwork::new();
    let mut groups = Vec::new();
    for id in peers {
        let node = network.node(id, &peers)?;
        let group = node.new_group(
            "colors",
            64 << 20,
            loader_fn(move |name: String| async move {
                println!("  {id} loads {name:?} (it owns it)");
                lookup_color(&name).await.ok_or(LoadError::NotFound)
            }),
        )?;
        groups.push((id, node, group));
    }
    let first = &groups[0].2;
    for name in ["red", "green", "blue", "white", "black", "red", "blue"] {
        let value = first.get(name).await?;
        println!("  node-a get {name:?} -> {}", value.as_str()?);
    }
    for (id, _node, group) in &groups {
        let s = group.stats();
        println!(
            "  {id}: gets {} hits {} peer_loads {} local_loads {} served_to_peers {}",
            s.gets, s.cache_hits, s.peer_loads, s.local_loads, s.server_requests
        );
    }
    Ok(())
}
