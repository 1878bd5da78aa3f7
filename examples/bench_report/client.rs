//! The client's work per query, with and without tfhe's AVX-512 kernels.

use crate::format::{bytes, items_label, ratio, time, Report};
use crate::records::ClientRecord;

pub fn section(r: &mut Report, clients: &[ClientRecord]) {
    if clients.is_empty() {
        return;
    }
    r.line("## Client");
    r.line("");
    r.line(
        "Per query on one thread, d = 128: drawing the fresh secret key from the OS, encrypting",
    );
    r.line("(including the key's transform and tfhe's noise), and decrypting every score plus the");
    r.line(
        "top 10 (into the app's reused buffer; in brackets with a fresh one), beside the plaintext",
    );
    r.line("scan of the same catalog. \"portable\" is built without tfhe's AVX-512 FFT kernels.");
    r.line("");
    r.line("| build | layout | items | key | encrypt | decrypt + top-10 | plaintext scan | decrypt / plaintext | up / down / hint |");
    r.line("|---|---|---|---|---|---|---|---|---|");
    for c in clients {
        for l in &c.layouts {
            r.line(format!(
                "| {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} / {} / {} |",
                c.build,
                l.layout,
                items_label(l.items),
                time(l.key_generation_seconds),
                time(l.encrypt_seconds),
                time(l.decrypt_top10_seconds),
                time(l.decrypt_top10_fresh_seconds),
                time(l.plaintext_seconds_t1),
                ratio(l.decrypt_top10_seconds, l.plaintext_seconds_t1),
                bytes(l.query_message_bytes as f64),
                bytes(l.response_message_bytes as f64),
                bytes(l.hint_message_bytes as f64),
            ));
        }
    }
    r.line("");
}
