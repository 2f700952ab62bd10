//! One forward pass per text, reading the stack's SAEs at chosen positions: the data side of
//! predecessor groups and deactivation.

use std::collections::BTreeMap;

use burn::tensor::{activation::log_softmax, backend::Backend};
use interp_models::{Batch, HookSpec, HookedTransformer, NameFilter};
use ndarray::Array2;

use crate::error::{Error, Result};
use crate::node::Module;
use crate::stack::SaeStack;

/// SAE codes `[positions, d_sae]` by stack slot.
pub type Codes = BTreeMap<(usize, Module), Array2<f32>>;

/// Runs `tokens` with `spec`'s hooks, caching the hooks of `slots`, and encodes each slot's
/// activations at `positions` with its SAE. Returns the codes and the mean next-token loss of
/// the sequence (nats).
///
/// # Errors
/// [`Error::Invalid`] for a position past the sequence; model and SAE errors.
pub(crate) fn codes_at<B: Backend>(
    model: &HookedTransformer<B>,
    stack: &SaeStack,
    tokens: &[u32],
    positions: &[usize],
    slots: &[(usize, Module)],
    spec: HookSpec<B>,
) -> Result<(Codes, f64)> {
    if let Some(&p) = positions.iter().find(|&&p| p >= tokens.len()) {
        return Err(Error::invalid(
            "position",
            format!("{p} is past the text's {} tokens", tokens.len()),
        ));
    }
    let hooks: Vec<String> = slots
        .iter()
        .map(|&(l, m)| stack.get(l, m).map(|e| e.hook.to_string()))
        .collect::<Result<_>>()?;
    let spec = spec.cache(NameFilter::patterns(hooks.iter().map(String::as_str)));
    let (logits, cache) = model.run(&Batch::single(tokens), &spec)?;
    let loss = mean_loss(logits, tokens)?;
    let mut out = Codes::new();
    for &(l, m) in slots {
        let e = stack.get(l, m)?;
        let act = cache.get(&e.hook).ok_or_else(|| {
            Error::invalid("cache", format!("the forward did not cache `{}`", e.hook))
        })?;
        let dims = act.dims();
        let n_pos = dims[1];
        let width: usize = dims[2..].iter().product();
        let data = act
            .to_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| Error::invalid("activations", format!("{e:?}")))?;
        let mut rows = Array2::<f32>::zeros((positions.len(), width));
        for (r, &p) in positions.iter().enumerate() {
            debug_assert!(p < n_pos);
            rows.row_mut(r).assign(&ndarray::ArrayView1::from(
                &data[p * width..(p + 1) * width],
            ));
        }
        out.insert((l, m), e.sae.encode(rows.view())?);
    }
    Ok((out, loss))
}

/// Mean `−log p(tokens[i+1] | tokens[..=i])` from logits `[1, pos, vocab]`.
fn mean_loss<B: Backend>(logits: burn::tensor::Tensor<B, 3>, tokens: &[u32]) -> Result<f64> {
    let [_, n, v] = logits.dims();
    if n < 2 {
        return Ok(0.0);
    }
    let logp = log_softmax(logits.slice([0..1, 0..n - 1, 0..v]).reshape([n - 1, v]), 1)
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| Error::invalid("logits", format!("{e:?}")))?;
    let total: f64 = (0..n - 1)
        .map(|i| -(logp[i * v + tokens[i + 1] as usize] as f64))
        .sum();
    Ok(total / (n - 1) as f64)
}
