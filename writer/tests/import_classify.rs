//! Tensor classification: the naming rules for BERT/MiniLM, Llama, Qwen and
//! GPT-2, the regime rules (dtype, rank, size), role overrides and palette
//! group keys.

use hhtld_format::{Dtype, Regime, Role};
use hhtld_writer::import::{
    classify, group_key, matrix_dims, override_regime, parse_override, role_from_name,
    Classification, Classifier, GroupKey, RoleError, SafetensorsModel, MIN_GATED_COLS,
    SMALL_TENSOR_NUMEL,
};
use safetensors::tensor::TensorView;

use Dtype::*;
use Regime::*;
use Role::*;

/// (name, dtype, shape, expected role, expected regime)
type Row = (&'static str, Dtype, &'static [u64], Role, Regime);

const BERT: &[Row] = &[
    (
        "embeddings.word_embeddings.weight",
        F32,
        &[30522, 384],
        TokenEmbedding,
        Index,
    ),
    (
        "embeddings.position_embeddings.weight",
        F32,
        &[512, 384],
        PositionEmbedding,
        Index,
    ),
    // Only 768 elements: below SMALL_TENSOR_NUMEL.
    (
        "embeddings.token_type_embeddings.weight",
        F32,
        &[2, 384],
        Other,
        Passthrough,
    ),
    (
        "embeddings.LayerNorm.weight",
        F32,
        &[384],
        Norm,
        Passthrough,
    ),
    ("embeddings.LayerNorm.bias", F32, &[384], Norm, Passthrough),
    (
        "embeddings.position_ids",
        I64,
        &[1, 512],
        Other,
        Passthrough,
    ),
    (
        "encoder.layer.0.attention.self.query.weight",
        F32,
        &[384, 384],
        AttnQ,
        Argmax,
    ),
    (
        "encoder.layer.0.attention.self.key.weight",
        F32,
        &[384, 384],
        AttnK,
        Argmax,
    ),
    (
        "encoder.layer.0.attention.self.value.weight",
        F32,
        &[384, 384],
        AttnV,
        Argmax,
    ),
    (
        "encoder.layer.0.attention.self.query.bias",
        F32,
        &[384],
        Bias,
        Passthrough,
    ),
    (
        "encoder.layer.0.attention.self.value.bias",
        F32,
        &[384],
        Bias,
        Passthrough,
    ),
    (
        "encoder.layer.0.attention.output.dense.weight",
        F32,
        &[384, 384],
        AttnO,
        Argmax,
    ),
    (
        "encoder.layer.0.attention.output.dense.bias",
        F32,
        &[384],
        Bias,
        Passthrough,
    ),
    (
        "encoder.layer.0.attention.output.LayerNorm.weight",
        F32,
        &[384],
        Norm,
        Passthrough,
    ),
    (
        "encoder.layer.0.attention.output.LayerNorm.bias",
        F32,
        &[384],
        Norm,
        Passthrough,
    ),
    (
        "encoder.layer.0.intermediate.dense.weight",
        F32,
        &[1536, 384],
        MlpUp,
        Argmax,
    ),
    (
        "encoder.layer.0.intermediate.dense.bias",
        F32,
        &[1536],
        Bias,
        Passthrough,
    ),
    (
        "encoder.layer.5.output.dense.weight",
        F32,
        &[384, 1536],
        MlpDown,
        Argmax,
    ),
    (
        "encoder.layer.5.output.dense.bias",
        F32,
        &[384],
        Bias,
        Passthrough,
    ),
    (
        "encoder.layer.5.output.LayerNorm.weight",
        F32,
        &[384],
        Norm,
        Passthrough,
    ),
    ("pooler.dense.weight", F32, &[384, 384], Other, Argmax),
    ("pooler.dense.bias", F32, &[384], Bias, Passthrough),
    // Prefixed names (BertForMaskedLM and friends).
    (
        "bert.embeddings.word_embeddings.weight",
        F16,
        &[30522, 768],
        TokenEmbedding,
        Index,
    ),
    (
        "bert.encoder.layer.11.attention.output.dense.weight",
        F16,
        &[768, 768],
        AttnO,
        Argmax,
    ),
    (
        "bert.encoder.layer.11.output.dense.weight",
        F16,
        &[768, 3072],
        MlpDown,
        Argmax,
    ),
    (
        "bert.encoder.layer.11.intermediate.dense.weight",
        F16,
        &[3072, 768],
        MlpUp,
        Argmax,
    ),
    (
        "cls.predictions.transform.dense.weight",
        F32,
        &[768, 768],
        Other,
        Argmax,
    ),
    (
        "cls.predictions.transform.LayerNorm.weight",
        F32,
        &[768],
        Norm,
        Passthrough,
    ),
];

const LLAMA_QWEN: &[Row] = &[
    (
        "model.embed_tokens.weight",
        Bf16,
        &[32000, 4096],
        TokenEmbedding,
        Index,
    ),
    (
        "model.layers.0.self_attn.q_proj.weight",
        Bf16,
        &[4096, 4096],
        AttnQ,
        Argmax,
    ),
    (
        "model.layers.0.self_attn.k_proj.weight",
        Bf16,
        &[1024, 4096],
        AttnK,
        Argmax,
    ),
    (
        "model.layers.0.self_attn.v_proj.weight",
        Bf16,
        &[1024, 4096],
        AttnV,
        Argmax,
    ),
    (
        "model.layers.0.self_attn.o_proj.weight",
        Bf16,
        &[4096, 4096],
        AttnO,
        Argmax,
    ),
    (
        "model.layers.31.mlp.gate_proj.weight",
        Bf16,
        &[11008, 4096],
        MlpGate,
        Argmax,
    ),
    (
        "model.layers.31.mlp.up_proj.weight",
        Bf16,
        &[11008, 4096],
        MlpUp,
        Argmax,
    ),
    (
        "model.layers.31.mlp.down_proj.weight",
        Bf16,
        &[4096, 11008],
        MlpDown,
        Argmax,
    ),
    (
        "model.layers.0.input_layernorm.weight",
        Bf16,
        &[4096],
        Norm,
        Passthrough,
    ),
    (
        "model.layers.0.post_attention_layernorm.weight",
        Bf16,
        &[4096],
        Norm,
        Passthrough,
    ),
    ("model.norm.weight", Bf16, &[4096], Norm, Passthrough),
    ("lm_head.weight", Bf16, &[32000, 4096], LmHead, Index),
    (
        "model.layers.0.self_attn.rotary_emb.inv_freq",
        F32,
        &[64],
        Other,
        Passthrough,
    ),
    // Qwen2: q/k/v biases; Qwen3: per-head q/k norms.
    (
        "model.layers.0.self_attn.q_proj.bias",
        Bf16,
        &[896],
        Bias,
        Passthrough,
    ),
    (
        "model.layers.0.self_attn.k_proj.bias",
        Bf16,
        &[128],
        Bias,
        Passthrough,
    ),
    (
        "model.layers.0.self_attn.q_norm.weight",
        Bf16,
        &[128],
        Norm,
        Passthrough,
    ),
    (
        "model.layers.0.self_attn.k_norm.weight",
        Bf16,
        &[128],
        Norm,
        Passthrough,
    ),
    (
        "model.embed_tokens.weight",
        F16,
        &[151936, 896],
        TokenEmbedding,
        Index,
    ),
];

const GPT2: &[Row] = &[
    ("wte.weight", F32, &[50257, 768], TokenEmbedding, Index),
    (
        "transformer.wte.weight",
        F32,
        &[50257, 768],
        TokenEmbedding,
        Index,
    ),
    ("wpe.weight", F32, &[1024, 768], PositionEmbedding, Index),
    (
        "transformer.wpe.weight",
        F32,
        &[1024, 768],
        PositionEmbedding,
        Index,
    ),
    ("h.0.attn.c_attn.weight", F32, &[768, 2304], AttnQkv, Argmax),
    ("h.0.attn.c_attn.bias", F32, &[2304], Bias, Passthrough),
    ("h.0.attn.c_proj.weight", F32, &[768, 768], AttnO, Argmax),
    ("h.0.attn.c_proj.bias", F32, &[768], Bias, Passthrough),
    (
        "transformer.h.11.mlp.c_fc.weight",
        F32,
        &[768, 3072],
        MlpUp,
        Argmax,
    ),
    (
        "transformer.h.11.mlp.c_proj.weight",
        F32,
        &[3072, 768],
        MlpDown,
        Argmax,
    ),
    ("h.0.ln_1.weight", F32, &[768], Norm, Passthrough),
    ("h.0.ln_2.bias", F32, &[768], Norm, Passthrough),
    ("ln_f.weight", F32, &[768], Norm, Passthrough),
    // Old checkpoints store the causal mask buffer as `attn.bias`.
    ("h.0.attn.bias", F32, &[1, 1, 1024, 1024], Bias, Passthrough),
    ("h.0.attn.masked_bias", F32, &[], Other, Passthrough),
];

const UNKNOWN: &[Row] = &[
    ("foo.bar.weight", F32, &[128, 128], Other, Argmax),
    ("foo", F32, &[128, 128], Other, Argmax),
    ("foo.weight", F16, &[2, 64, 64], Other, Argmax),
    ("foo.weight", F64, &[64, 64], Other, Argmax),
    ("foo.weight", F32, &[16384], Other, Passthrough),
    ("scalar", F32, &[], Other, Passthrough),
    ("foo.weight", I32, &[128, 128], Other, Passthrough),
    ("foo.weight", F8E4M3, &[128, 128], Other, Passthrough),
    ("foo.weight", U8, &[128, 128], Other, Passthrough),
    // Roles survive when the regime rules force passthrough.
    (
        "embeddings.word_embeddings.weight",
        F32,
        &[10, 16],
        TokenEmbedding,
        Passthrough,
    ),
    ("lm_head.weight", I8, &[32000, 4096], LmHead, Passthrough),
    ("layers.0.q_proj.weight", F32, &[4096], AttnQ, Passthrough),
    ("", F32, &[128, 128], Other, Argmax),
];

fn check_table(table: &[Row]) {
    let plain = Classifier::new();
    for &(name, dtype, shape, role, regime) in table {
        let want = Classification { role, regime };
        assert_eq!(
            classify(name, dtype, shape),
            want,
            "{name} {dtype} {shape:?}"
        );
        assert_eq!(role_from_name(name), role, "{name}");
        assert_eq!(plain.classify(name, dtype, shape).unwrap(), want, "{name}");
    }
}

#[test]
fn bert_minilm_names() {
    check_table(BERT);
}

#[test]
fn llama_qwen_names() {
    check_table(LLAMA_QWEN);
}

#[test]
fn gpt2_names() {
    check_table(GPT2);
}

#[test]
fn unknown_names_and_regime_rules() {
    check_table(UNKNOWN);
}

#[test]
fn other_known_architectures() {
    let rows: &[Row] = &[
        (
            "distilbert.transformer.layer.0.attention.q_lin.weight",
            F32,
            &[768, 768],
            AttnQ,
            Argmax,
        ),
        (
            "distilbert.transformer.layer.0.attention.out_lin.weight",
            F32,
            &[768, 768],
            AttnO,
            Argmax,
        ),
        (
            "gpt_neox.layers.0.attention.query_key_value.weight",
            F16,
            &[6144, 2048],
            AttnQkv,
            Argmax,
        ),
        (
            "gpt_neox.layers.0.mlp.dense_h_to_4h.weight",
            F16,
            &[8192, 2048],
            MlpUp,
            Argmax,
        ),
        (
            "gpt_neox.layers.0.mlp.dense_4h_to_h.weight",
            F16,
            &[2048, 8192],
            MlpDown,
            Argmax,
        ),
        (
            "gpt_neox.embed_in.weight",
            F16,
            &[50304, 2048],
            TokenEmbedding,
            Index,
        ),
        ("embed_out.weight", F16, &[50304, 2048], LmHead, Index),
        (
            "model.decoder.layers.0.fc1.weight",
            F16,
            &[8192, 2048],
            MlpUp,
            Argmax,
        ),
        (
            "model.decoder.layers.0.fc2.weight",
            F16,
            &[2048, 8192],
            MlpDown,
            Argmax,
        ),
        (
            "model.decoder.layers.0.self_attn.out_proj.weight",
            F16,
            &[2048, 2048],
            AttnO,
            Argmax,
        ),
        (
            "model.decoder.embed_positions.weight",
            F16,
            &[2050, 2048],
            PositionEmbedding,
            Index,
        ),
        (
            "model.decoder.final_layer_norm.weight",
            F16,
            &[2048],
            Norm,
            Passthrough,
        ),
        (
            "model.layers.0.self_attn.qkv_proj.weight",
            Bf16,
            &[9216, 3072],
            AttnQkv,
            Argmax,
        ),
    ];
    check_table(rows);
}

#[test]
fn small_tensor_threshold_is_exclusive() {
    assert_eq!(SMALL_TENSOR_NUMEL, 4096);
    let name = "model.layers.0.self_attn.q_proj.weight";
    assert_eq!(classify(name, F32, &[64, 64]).regime, Argmax);
    assert_eq!(classify(name, F32, &[64, 63]).regime, Passthrough);
    assert_eq!(classify(name, F32, &[1, 4096]).regime, Argmax);
    assert_eq!(classify(name, F32, &[0, 4096]).regime, Passthrough);
    let emb = "embed_tokens.weight";
    assert_eq!(classify(emb, Bf16, &[512, 8]).regime, Index);
    assert_eq!(classify(emb, Bf16, &[511, 8]).regime, Passthrough);
}

#[test]
fn rows_too_narrow_for_a_gate_stay_passthrough() {
    assert_eq!(MIN_GATED_COLS, 8);
    let emb = "embed_tokens.weight";
    // Per-row rho over fewer than 8 values is noise (over 1, undefined).
    assert_eq!(classify(emb, Bf16, &[8192, 7]).regime, Passthrough);
    assert_eq!(classify(emb, Bf16, &[8192, 1]).regime, Passthrough);
    assert_eq!(classify(emb, Bf16, &[8192, 8]).regime, Index);
    // The width is the product of the trailing dims.
    let w = "model.layers.0.mlp.up_proj.weight";
    assert_eq!(classify(w, F32, &[4096, 2, 4]).regime, Argmax);
    assert_eq!(classify(w, F32, &[4096, 1, 4]).regime, Passthrough);
}

#[test]
fn role_matching_ignores_case() {
    assert_eq!(
        role_from_name("Encoder.Layer.0.Output.LayerNorm.Weight"),
        Norm
    );
    assert_eq!(
        role_from_name("model.layers.0.self_attn.Q_PROJ.weight"),
        AttnQ
    );
    assert_eq!(role_from_name("x.BIAS"), Bias);
}

#[test]
fn parse_override_syntax() {
    assert_eq!(
        parse_override("encoder.layer.0.attention.self.query.weight=attn_q").unwrap(),
        (
            "encoder.layer.0.attention.self.query.weight".to_string(),
            AttnQ
        )
    );
    // Split at the last '=': names may contain '='.
    assert_eq!(
        parse_override("a=b=norm").unwrap(),
        ("a=b".to_string(), Norm)
    );
    for &r in Role::ALL {
        assert_eq!(parse_override(&format!("t={}", r.name())).unwrap().1, r);
    }
    for bad in ["no_equals", "=norm", ""] {
        match parse_override(bad) {
            Err(RoleError::OverrideSyntax { arg }) => assert_eq!(arg, bad),
            other => panic!("{bad:?}: expected OverrideSyntax, got {other:?}"),
        }
    }
    for (arg, role) in [("a=bogus", "bogus"), ("a=", ""), ("a=Attn_Q", "Attn_Q")] {
        match parse_override(arg) {
            Err(e @ RoleError::UnknownRole { .. }) => {
                let RoleError::UnknownRole { role: r, known, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(r, role);
                for &known_role in Role::ALL {
                    assert!(known.contains(known_role.name()), "{known}");
                }
                assert!(e.to_string().contains(arg));
            }
            other => panic!("{arg:?}: expected UnknownRole, got {other:?}"),
        }
    }
}

#[test]
fn override_regime_follows_role() {
    let sq: &[u64] = &[64, 64];
    for &role in Role::ALL {
        let want = match role {
            Norm | Bias => Passthrough,
            TokenEmbedding | PositionEmbedding | LmHead => Index,
            _ => Argmax,
        };
        assert_eq!(override_regime("t", role, F32, sq).unwrap(), want, "{role}");
        assert_eq!(
            override_regime("t", role, Bf16, sq).unwrap(),
            want,
            "{role}"
        );
    }
    // Explicit requests skip the size and rank heuristics...
    assert_eq!(override_regime("t", AttnQ, F32, &[2, 384]).unwrap(), Argmax);
    assert_eq!(
        override_regime("t", TokenEmbedding, F16, &[2, 3]).unwrap(),
        Index
    );
    assert_eq!(override_regime("t", MlpUp, F32, &[384]).unwrap(), Argmax);
    // ...except that "other" is argmax only for 2-D and wider floats.
    assert_eq!(
        override_regime("t", Other, F32, &[384]).unwrap(),
        Passthrough
    );
    assert_eq!(override_regime("t", Other, F32, &[]).unwrap(), Passthrough);
    assert_eq!(
        override_regime("t", Other, F32, &[2, 2, 2]).unwrap(),
        Argmax
    );
    // Non-encodable dtypes: passthrough roles are fine, others are errors.
    for dtype in [I64, Bool, U8, F8E5M2] {
        for role in [Other, Norm, Bias] {
            assert_eq!(override_regime("t", role, dtype, sq).unwrap(), Passthrough);
        }
        for role in [TokenEmbedding, LmHead, AttnQ, MlpDown] {
            match override_regime("pos_ids", role, dtype, sq) {
                Err(RoleError::OverrideNotEncodable {
                    tensor,
                    role: r,
                    dtype: d,
                }) => {
                    assert_eq!((tensor.as_str(), r, d), ("pos_ids", role, dtype));
                }
                other => panic!("{role} on {dtype}: expected error, got {other:?}"),
            }
        }
    }
}

#[test]
fn classifier_applies_overrides() {
    let c = Classifier::from_args(&[
        "embeddings.token_type_embeddings.weight=token_embedding",
        "pooler.dense.weight=norm",
        "pooler.dense.weight=norm",
    ])
    .unwrap();
    assert_eq!(c.overrides().count(), 2);
    assert_eq!(
        c.classify("embeddings.token_type_embeddings.weight", F32, &[2, 384])
            .unwrap(),
        Classification {
            role: TokenEmbedding,
            regime: Index
        }
    );
    assert_eq!(
        c.classify("pooler.dense.weight", F32, &[384, 384]).unwrap(),
        Classification {
            role: Norm,
            regime: Passthrough
        }
    );
    // Tensors without an override keep the rules.
    assert_eq!(
        c.classify(
            "encoder.layer.0.intermediate.dense.weight",
            F32,
            &[1536, 384]
        )
        .unwrap(),
        classify(
            "encoder.layer.0.intermediate.dense.weight",
            F32,
            &[1536, 384]
        )
    );

    match Classifier::from_args(&["w=attn_q", "w=attn_k"]) {
        Err(RoleError::ConflictingOverride {
            tensor,
            first,
            second,
        }) => assert_eq!((tensor.as_str(), first, second), ("w", AttnQ, AttnK)),
        other => panic!("expected ConflictingOverride, got {other:?}"),
    }
    assert!(matches!(
        Classifier::from_args(&["ok=norm", "broken"]),
        Err(RoleError::OverrideSyntax { .. })
    ));
    let ids = Classifier::from_args(&["embeddings.position_ids=position_embedding"]).unwrap();
    assert!(matches!(
        ids.classify("embeddings.position_ids", I64, &[1, 512]),
        Err(RoleError::OverrideNotEncodable { .. })
    ));
}

#[test]
fn classify_model_checks_override_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let w = vec![0u8; 64 * 64 * 4];
    let b = vec![0u8; 64 * 4];
    let ids = vec![0u8; 8 * 8];
    let views = vec![
        (
            "layers.0.q_proj.weight",
            TensorView::new(safetensors::Dtype::F32, vec![64, 64], &w).unwrap(),
        ),
        (
            "layers.0.q_proj.bias",
            TensorView::new(safetensors::Dtype::F32, vec![64], &b).unwrap(),
        ),
        (
            "position_ids",
            TensorView::new(safetensors::Dtype::I64, vec![1, 8], &ids).unwrap(),
        ),
    ];
    safetensors::serialize_to_file(views, None, &path).unwrap();
    let model = SafetensorsModel::open(&path).unwrap();

    let plain = Classifier::new().classify_model(&model).unwrap();
    assert_eq!(plain.len(), 3);
    for (ct, info) in plain.iter().zip(model.tensors()) {
        assert_eq!(ct.info, info);
        assert_eq!(ct.class, classify(&info.name, info.dtype, &info.shape));
        assert!(!ct.overridden);
    }

    let c = Classifier::from_args(&["layers.0.q_proj.weight=other"]).unwrap();
    let out = c.classify_model(&model).unwrap();
    let q = out
        .iter()
        .find(|t| t.info.name == "layers.0.q_proj.weight")
        .unwrap();
    assert!(q.overridden);
    assert_eq!(q.class.role, Other);
    assert_eq!(q.class.regime, Argmax);
    assert_eq!(out.iter().filter(|t| t.overridden).count(), 1);

    match Classifier::from_args(&["layers.0.k_proj.weight=attn_k"])
        .unwrap()
        .classify_model(&model)
    {
        Err(RoleError::OverrideUnknownTensor { tensor }) => {
            assert_eq!(tensor, "layers.0.k_proj.weight")
        }
        other => panic!("expected OverrideUnknownTensor, got {other:?}"),
    }
    assert!(matches!(
        Classifier::from_args(&["position_ids=attn_q"])
            .unwrap()
            .classify_model(&model),
        Err(RoleError::OverrideNotEncodable { .. })
    ));
}

#[test]
fn group_keys() {
    let k = |role, shape: &[u64]| group_key(role, shape).unwrap();
    assert_eq!(
        k(AttnQ, &[384, 384]),
        GroupKey {
            role: AttnQ,
            n_cols: 384,
            n_rows: 384
        }
    );
    // Same role and shape share; a different role, width or height does not.
    assert_eq!(k(AttnQ, &[384, 384]), k(AttnQ, &[384, 384]));
    assert_ne!(k(AttnQ, &[384, 384]), k(AttnK, &[384, 384]));
    assert_ne!(k(MlpUp, &[1536, 384]), k(MlpUp, &[384, 1536]));
    assert_ne!(k(MlpUp, &[1536, 384]), k(MlpUp, &[1535, 384]));
    // Matrix view of spec §4.
    assert_eq!(k(Other, &[2, 3, 4]), k(Other, &[2, 12]));
    assert_eq!(
        k(Other, &[7]),
        GroupKey {
            role: Other,
            n_cols: 7,
            n_rows: 1
        }
    );
    assert_eq!(
        k(Other, &[]),
        GroupKey {
            role: Other,
            n_cols: 1,
            n_rows: 1
        }
    );
    assert_eq!(group_key(Other, &[0, u64::MAX, 2]), None);
    assert_eq!(matrix_dims(&[5, 0, 9]), Some((5, 0)));
}
