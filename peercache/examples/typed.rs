//! A typed cache over serde values (feature `typed`): three nodes in one
//! process share a group of `Product`s, cached as JSON bytes so that any
//! node, in any language, can read them.
//!
//! Run it with `cargo run -p peercache --example typed --features typed`.

use peercache::in_process::InProcessNetwork;
use peercache::typed::TypedGroup;
use peercache::LoadError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    sku: String,
    name: String,
    price_cents: u64,
}

/// The "catalogue service": slow, so the cache is worth having.
async fn fetch_product(sku: &str) -> Result<Product, LoadError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (name, price_cents) = match sku {
        "A-1" => ("anvil", 4_999),
        "B-2" => ("bucket", 799),
        "C-3" => ("chisel", 1_250),
        _ => return Err(LoadError::NotFound),
    };
    Ok(Product {
        sku: sku.to_owned(),
        name: name.to_owned(),
        price_cents,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ids = ["node-a", "node-b", "node-c"];
    let network = InProcessNetwork::new();
    let mut nodes = Vec::new();
    for id in ids {
        let node = network.node(id, &ids)?;
        let products: TypedGroup<Product> = TypedGroup::build(
            node.group_builder("products")
                .cache_bytes(16 << 20)
                .ttl(Duration::from_secs(300)),
            move |sku: String| async move {
                println!("  {id} loads {sku:?} (it owns it)");
                fetch_product(&sku).await
            },
        )?;
        nodes.push((id, node, products));
    }

    let products = &nodes[0].2;
    for sku in ["A-1", "B-2", "C-3", "A-1"] {
        let p = products.get(sku).await?;
        println!(
            "node-a get {sku:?} -> {} at {} cents",
            p.name, p.price_cents
        );
    }
    match products.get("Z-9").await {
        Err(e) if e.is_not_found() => println!("node-a get \"Z-9\" -> not found"),
        other => println!("node-a get \"Z-9\" -> unexpected {other:?}"),
    }

    // A price change: stored at the owner, dropped from every other node.
    let mut anvil = products.get("A-1").await?;
    anvil.price_cents = 3_999;
    products.set("A-1", &anvil, None).await?;
    let seen = nodes[2].2.get("A-1").await?;
    println!(
        "node-c get \"A-1\" after the set -> {} cents",
        seen.price_cents
    );

    // The bytes on the wire and in the cache are plain JSON.
    let raw = products.group().get("B-2").await?;
    println!("raw bytes of \"B-2\": {}", raw.as_str()?);

    for (id, _node, group) in &nodes {
        let s = group.stats();
        println!(
            "{id}: gets {} hits {} local_loads {} peer_loads {}",
            s.gets, s.cache_hits, s.local_loads, s.peer_loads
        );
    }
    Ok(())
}
