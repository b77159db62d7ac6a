//! The connector authors' guide (`wit/README.md`) walks through this
//! crate: its `src/lib.rs` code block must be the file itself, so the
//! walk-through is exactly what CI compiles to a component, bundles and
//! tests end to end.

const GUIDE: &str = include_str!("../../../wit/README.md");
const LIB: &str = include_str!("../src/lib.rs");

/// The code of `src/lib.rs` after its module doc.
fn lib_code() -> &'static str {
    let doc_end = LIB.lines().take_while(|l| l.starts_with("//!") || l.is_empty()).map(|l| l.len() + 1).sum();
    &LIB[doc_end..]
}

/// The first Rust code block of the guide's Rust walk-through.
fn guide_code() -> &'static str {
    let section =
        GUIDE.split("## Writing one in Rust").nth(1).expect("the guide has a `## Writing one in Rust` section");
    let block = section.split("```rust\n").nth(1).expect("the walk-through has a ```rust block");
    block.split("```").next().unwrap()
}

#[test]
fn the_guide_walks_through_lib_rs_verbatim() {
    assert!(lib_code().contains("export_connector!"), "lib.rs is the connector's entry point");
    assert_eq!(
        guide_code(),
        lib_code(),
        "wit/README.md's walk-through differs from plugin/csv/src/lib.rs: copy the file (after its module doc) into the guide"
    );
}
