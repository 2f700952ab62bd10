//! One module per architecture: the HF `config.json` mirror, its resolution into
//! [`ModelConfig`](crate::config::ModelConfig), and the checked weight map.

pub mod gpt2;
