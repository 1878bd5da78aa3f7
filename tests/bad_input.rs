//! Bad input on both sides: wrong parameter id, stale version, wrong dimension, wrong
//! length, out-of-range fields, corrupt or random bytes. Each is a typed error, never a
//! panic, and the served catalog keeps answering correctly afterwards.

mod common;

use std::sync::OnceLock;

use blindscore_client::core::PreparedCatalog;
use blindscore_client::ClientError;
use blindscore_common::digest::{sha256, CatalogVersion};
use blindscore_common::params::ParamId;
use blindscore_common::wire::{self, WIRE_VERSION};
use blindscore_common::{
    CatalogDescription, HintMessage, Layout, ProtocolError, QueryMessage, ResponseMessage,
};
use blindscore_server::{Kernel, ServedCatalog};
use common::*;
use proptest::prelude::*;

struct Fixture {
    served: ServedCatalog,
    prepared: PreparedCatalog,
    query: Vec<u8>,
    response: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let catalog = random_catalog(3000, 64, 8, 9);
        let served = serve(&catalog, Layout::Grouped(4), 8);
        let prepared = prepare(&served);
        let query = prepared
            .seal_quantized(&random_query(64, 8, 1))
            .unwrap()
            .bytes;
        let response = served.score_encoded(&query).unwrap().to_vec();
        Fixture {
            served,
            prepared,
            query,
            response,
        }
    })
}

fn still_exact() {
    let f = fixture();
    let catalog = random_catalog(3000, 64, 8, 9);
    let query = random_query(64, 8, 77);
    let scores = round_trip(&f.served, &f.prepared, &query);
    assert_eq!(wrong_scores(&catalog, &query, &scores), 0);
}

fn query_message() -> QueryMessage {
    wire::decode(&fixture().query, u64::MAX).unwrap()
}

// ---- server side ----

#[test]
fn server_refuses_wrong_parameter_id() {
    let mut q = query_message();
    q.catalog.param_id = ParamId(9);
    let err = fixture()
        .served
        .score_encoded(&wire::encode(&q))
        .unwrap_err();
    assert!(
        matches!(err, ProtocolError::ParameterMismatch { .. }),
        "{err}"
    );
    still_exact();
}

#[test]
fn server_refuses_stale_version_and_other_catalog() {
    let mut q = query_message();
    q.catalog.version = CatalogVersion([1; 32]);
    let err = fixture()
        .served
        .score_encoded(&wire::encode(&q))
        .unwrap_err();
    assert!(matches!(err, ProtocolError::StaleVersion { .. }), "{err}");
    let mut q = query_message();
    q.catalog.catalog_id = "other".into();
    let err = fixture()
        .served
        .score_encoded(&wire::encode(&q))
        .unwrap_err();
    assert!(
        matches!(err, ProtocolError::CatalogMismatch { .. }),
        "{err}"
    );
}

#[test]
fn server_refuses_wrong_lengths_and_versions() {
    let mut q = query_message();
    q.bodies.pop();
    let err = fixture()
        .served
        .score_encoded(&wire::encode(&q))
        .unwrap_err();
    assert!(matches!(err, ProtocolError::WrongLength { .. }), "{err}");
    let mut q = query_message();
    q.wire_version = WIRE_VERSION + 1;
    let err = fixture()
        .served
        .score_encoded(&wire::encode(&q))
        .unwrap_err();
    assert!(matches!(err, ProtocolError::WireVersion { .. }), "{err}");
    let mut bytes = fixture().query.clone();
    bytes.push(0);
    assert!(matches!(
        fixture().served.score_encoded(&bytes),
        Err(ProtocolError::Malformed(_))
    ));
    bytes.truncate(10);
    assert!(matches!(
        fixture().served.score_encoded(&bytes),
        Err(ProtocolError::Malformed(_))
    ));
    // A huge declared length is refused before any allocation.
    let mut huge = vec![1u8, 0, 1, 0];
    huge.extend_from_slice(&[0xff; 16]);
    assert!(fixture().served.score_encoded(&huge).is_err());
    still_exact();
}

#[test]
fn a_bad_query_is_refused_at_its_check_and_a_batch_scores_each_query_as_alone() {
    let f = fixture();
    assert!(f.served.check_query(b"garbage".to_vec().into()).is_err());
    // The portable kernel adds a query's products in the same order in a pair as alone, so
    // a batch's responses are each query's alone, byte for byte, and in its place. (The
    // AVX-512 kernels order a pair's additions and a single query's differently: the low
    // bits of a word may differ, within the noise budget; tests/exactness.rs decrypts
    // batches scored with them.)
    let mut served = serve(&random_catalog(3000, 64, 8, 9), Layout::Grouped(4), 8);
    served.set_kernel(Kernel::Portable);
    let messages: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            let query = random_query(64, 8, 100 + i);
            f.prepared.seal_quantized(&query).unwrap().bytes
        })
        .collect();
    let checked: Vec<_> = messages
        .iter()
        .map(|m| served.check_query(m.clone().into()).unwrap())
        .collect();
    let batch = served.score(&checked);
    assert_eq!(batch.len(), 5);
    for (message, response) in messages.iter().zip(&batch) {
        assert_eq!(**response, *served.score_encoded(message).unwrap());
    }
    assert_ne!(batch[0], batch[1]);
}

// ---- client side ----

fn description() -> CatalogDescription {
    fixture().served.description().clone()
}

#[test]
fn client_refuses_unknown_or_downgraded_parameters() {
    let mut d = description();
    d.catalog.param_id = ParamId(0);
    let err = prepare_with(&d, fixture().served.hint_message())
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            ClientError::Protocol(ProtocolError::UnknownParameters(ParamId(0)))
        ),
        "{err}"
    );
}

#[test]
fn client_refuses_out_of_range_description_fields() {
    let hint = fixture().served.hint_message();
    type Mutation = Box<dyn Fn(&mut CatalogDescription)>;
    let cases: Vec<Mutation> = vec![
        Box::new(|d| d.dimension = 1 << 20),
        Box::new(|d| d.dimension = 0),
        Box::new(|d| d.item_count = u64::MAX),
        Box::new(|d| d.item_count = 0),
        Box::new(|d| d.layout = Layout::Grouped(3)),
        Box::new(|d| d.catalog_bits = 40),
        Box::new(|d| d.query_bits = 1),
        Box::new(|d| d.failure_log2 = 0),
        Box::new(|d| d.block_norm_sq = u64::MAX),
        Box::new(|d| d.delta_log2 -= 1),
        Box::new(|d| d.response_low += 1),
        Box::new(|d| d.wire_version = 7),
        Box::new(|d| d.catalog.catalog_id = "../etc".into()),
    ];
    for (i, mutate) in cases.iter().enumerate() {
        let mut d = description();
        mutate(&mut d);
        assert!(prepare_with(&d, hint).is_err(), "case {i} was accepted");
    }
}

#[test]
fn client_checks_the_hint_digest_and_contents() {
    let f = fixture();
    let mut hint = f.served.hint_message().to_vec();
    let last = hint.len() - 1;
    hint[last] ^= 1;
    let err = prepare_with(&description(), &hint).err().unwrap();
    assert!(
        matches!(err, ClientError::Protocol(ProtocolError::DigestMismatch(_))),
        "{err}"
    );
    // A hint for another version, even with a matching digest, is refused.
    let mut message: HintMessage = wire::decode(f.served.hint_message(), u64::MAX).unwrap();
    message.catalog.version = CatalogVersion([2; 32]);
    let bytes = wire::encode(&message);
    let mut d = description();
    d.hint_digest = sha256(&bytes);
    let err = prepare_with(&d, &bytes).err().unwrap();
    assert!(
        matches!(
            err,
            ClientError::Protocol(ProtocolError::StaleVersion { .. })
        ),
        "{err}"
    );
}

#[test]
fn client_refuses_bad_queries_before_encrypting() {
    let p = &fixture().prepared;
    assert!(matches!(
        p.seal_quantized(&[1; 63]),
        Err(ClientError::WrongDimension {
            found: 63,
            expected: 64
        })
    ));
    let mut q = vec![0; 64];
    q[5] = 128;
    assert!(matches!(
        p.seal_quantized(&q),
        Err(ClientError::QueryValueOutOfRange { index: 5, .. })
    ));
}

#[test]
fn client_refuses_bad_responses() {
    let f = fixture();
    let fresh = || {
        f.prepared
            .seal_quantized(&random_query(64, 8, 3))
            .unwrap()
            .pending
    };
    let good: ResponseMessage = wire::decode(&f.response, u64::MAX).unwrap();
    let mut stale = good.clone();
    stale.catalog.version = CatalogVersion([5; 32]);
    let err = fresh()
        .decrypt(&f.prepared, &wire::encode(&stale))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Protocol(ProtocolError::StaleVersion { .. })
        ),
        "{err}"
    );
    let mut short = good.clone();
    short.scores.truncate(10);
    let err = fresh()
        .decrypt(&f.prepared, &wire::encode(&short))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Protocol(ProtocolError::WrongLength { .. })
        ),
        "{err}"
    );
    let mut downgraded = good.clone();
    downgraded.catalog.param_id = ParamId(1);
    assert!(fresh()
        .decrypt(&f.prepared, &wire::encode(&downgraded))
        .is_err());
    assert!(fresh().decrypt(&f.prepared, b"").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_the_server(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        prop_assert!(fixture().served.score_encoded(&bytes).is_err());
    }

    #[test]
    fn corrupted_queries_are_refused_or_scored(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = fixture().query.clone();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        // A flipped body bit is still a valid query (of other values); anything else must
        // be a typed error. Neither may panic.
        let _ = fixture().served.score_encoded(&bytes);
    }

    #[test]
    fn random_bytes_never_panic_the_client(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let f = fixture();
        prop_assert!(prepare_with(&description(), &bytes).is_err());
        let pending = f.prepared.seal_quantized(&random_query(64, 8, 3)).unwrap().pending;
        prop_assert!(pending.decrypt(&f.prepared, &bytes).is_err());
        // Whatever decodes as a description must still pass the range checks without
        // panicking.
        if let Ok(d) = wire::decode::<CatalogDescription>(&bytes, 1 << 16) {
            let _ = d.shape();
        }
    }

    #[test]
    fn corrupted_responses_decrypt_to_an_error_or_to_scores(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let f = fixture();
        let mut bytes = f.response.clone();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        let pending = f.prepared.seal_quantized(&random_query(64, 8, 3)).unwrap().pending;
        let _ = pending.decrypt(&f.prepared, &bytes);
    }
}
