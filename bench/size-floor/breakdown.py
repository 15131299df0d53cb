"""Bytes of an unstripped bootstrap's symbols, summed by crate (a rough `cargo bloat --crates`).

cargo-bloat builds the binary itself and cannot use cargo-lambda's zig linker; this reads the
symbol table of a bootstrap built with the same settings but `CARGO_PROFILE_RELEASE_STRIP=false`.
A generic function counts for the crate that defines it, whatever crate instantiated it; C
symbols with the `aws_lc_` prefix count as AWS-LC; symbols without a Rust path are C (in these
binaries mostly AWS-LC's static functions and tables). Sizes are the symbol table's; .eh_frame,
relocations and unnamed constants belong to no symbol, so the sections are printed too.

    python breakdown.py target/lambda/<bin>/bootstrap [rows]
"""
import collections, re, subprocess, sys

path, rows = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20
out = subprocess.run(["llvm-nm", "--print-size", "--size-sort", "--radix=d", "--demangle", path],
                     capture_output=True, text=True, check=True).stdout
sections = subprocess.run(["llvm-size", "-A", path], capture_output=True, text=True, check=True).stdout
total = collections.Counter()
for line in out.splitlines():
    parts = line.split(None, 3)
    if len(parts) < 4:
        continue
    size, kind, name = int(parts[1]), parts[2], parts[3]
    # LLVM 14's demangler leaves the escapes of Rust's legacy mangling inside a path segment
    for esc, ch in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$RF$", "&"), ("$C$", ","), ("..", "::")):
        name = name.replace(esc, ch)
    if kind.lower() not in "tdrb" or kind.lower() == "b":
        continue  # text, data and read-only data only: .bss takes no file bytes
    if name.startswith("aws_lc_"):
        crate = "AWS-LC, exported (C)"
    elif name.startswith("ring_core_"):
        crate = "ring, exported (C/asm)"
    elif "::" not in name:
        crate = "C, unprefixed (mostly AWS-LC's internal functions and tables)"
    else:
        m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)::", name)
        crate = m.group(1) if m else "Rust, unattributed"
        if crate in ("core", "alloc", "std", "std_detect", "panic_abort"):
            crate = "std/core/alloc"
    total[crate] += size
named = sum(total.values())
print("| crate | bytes | share of named |\n|---|---:|---:|")
for crate, size in total.most_common(rows):
    print(f"| {crate} | {size:,} | {100 * size / named:.1f} % |")
rest = sum(s for _, s in total.most_common()[rows:])
print(f"| (others) | {rest:,} | {100 * rest / named:.1f} % |")
loaded = {}
for line in sections.splitlines()[2:]:
    parts = line.split()
    if len(parts) == 3 and parts[0].startswith(".") and int(parts[2]) > 0 and parts[0] not in (".bss", ".tbss"):
        loaded[parts[0]] = int(parts[1])  # address 0: not loaded (symbols, debug info)
print(f"\nnamed symbols: {named:,} bytes; loaded sections: {sum(loaded.values()):,} bytes, of which "
      + ", ".join(f"{k} {v:,}" for k, v in sorted(loaded.items(), key=lambda kv: -kv[1])[:6]))
