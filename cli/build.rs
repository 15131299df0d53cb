//! Embeds the sample events of `events/` so `sparkbridge send` works from any directory.

use std::fmt::Write;
use std::path::Path;

fn main() {
    // read when the script runs, not when it was compiled: a target/ shared by two checkouts
    // would otherwise embed the other checkout's events
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("../events");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut out = String::from("pub static SAMPLES: &[(&str, &str, &str)] = &[\n");
    for provider in ["loops", "esputnik", "sparkloop"] {
        let dir = root.join(provider);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("events folder")
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
        {
            let name = f.file_stem().unwrap().to_string_lossy().to_string();
            let abs = f.canonicalize().unwrap();
            writeln!(
                out,
                "    ({provider:?}, {name:?}, include_str!({:?})),",
                abs.display().to_string()
            )
            .unwrap();
        }
    }
    out.push_str("];\n");
    std::fs::write(
        Path::new(&std::env::var("OUT_DIR").unwrap()).join("samples.rs"),
        out,
    )
    .unwrap();
}
