//! Token windows: tokenized documents concatenated into fixed-length context windows, as
//! SAELens' `concat_and_batch_sequences` cuts them.

/// How documents become windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowRule {
    /// Tokens per window (at least 1, and at least 2 with `prepend_bos`).
    pub context_size: usize,
    /// The BOS token (for GPT-2 its EOS `<|endoftext|>`); used only with `prepend_bos` or
    /// `separate_with_bos`.
    pub bos: u32,
    /// Start every window with BOS, unless its text already starts with it.
    pub prepend_bos: bool,
    /// Put BOS between documents that meet inside a window, unless the second already starts
    /// with it.
    pub separate_with_bos: bool,
}

/// Packs documents' tokens into windows of [`WindowRule::context_size`] tokens: every window
/// starts with BOS (`prepend_bos`), documents that meet inside a window are separated by BOS
/// (`separate_with_bos`), a document that does not fit continues in the next window, and a
/// trailing partial window is dropped.
///
/// The packer holds only the document being cut; where the documents come from (a
/// [`Corpus`](super::Corpus) and a tokenizer, read once or cycled) is the caller's.
///
/// ```
/// use interp_core::corpus::{WindowPacker, WindowRule};
///
/// let rule = WindowRule { context_size: 4, bos: 0, prepend_bos: true, separate_with_bos: true };
/// let mut docs = vec![vec![1, 2], vec![3, 4, 5, 6]].into_iter();
/// let mut packer = WindowPacker::new(rule);
/// let mut next = || packer.next_window(|| Ok::<_, ()>(docs.next()));
/// assert_eq!(next(), Ok(Some(vec![0, 1, 2, 0])));
/// assert_eq!(next(), Ok(Some(vec![0, 3, 4, 5])));
/// assert_eq!(next(), Ok(None)); // `[0, 6]` is a partial window
/// ```
#[derive(Clone, Debug)]
pub struct WindowPacker {
    rule: WindowRule,
    /// Tokens of the current document and how many of them are used.
    pending: Vec<u32>,
    used: usize,
    /// Whether the next pending token is a document's first.
    doc_start: bool,
    exhausted: bool,
}

impl WindowPacker {
    /// A packer cutting by `rule`, before its first document.
    pub fn new(rule: WindowRule) -> Self {
        WindowPacker {
            rule,
            pending: Vec::new(),
            used: 0,
            doc_start: false,
            exhausted: false,
        }
    }

    /// The rule.
    pub fn rule(&self) -> WindowRule {
        self.rule
    }

    /// The next full window, taking documents' tokens from `next_document` as needed (`None`
    /// from it: no more documents; documents without tokens are skipped). `None` once the
    /// documents run out, then on every later call without asking `next_document` again.
    ///
    /// # Errors
    /// What `next_document` returns; the window being filled is then lost.
    pub fn next_window<E>(
        &mut self,
        mut next_document: impl FnMut() -> Result<Option<Vec<u32>>, E>,
    ) -> Result<Option<Vec<u32>>, E> {
        if self.exhausted {
            return Ok(None);
        }
        let WindowRule {
            context_size: ctx,
            bos,
            ..
        } = self.rule;
        let mut w = Vec::with_capacity(ctx);
        loop {
            if w.len() == ctx {
                return Ok(Some(w));
            }
            while self.used == self.pending.len() {
                match next_document()? {
                    Some(ids) => {
                        self.pending = ids;
                        self.used = 0;
                        self.doc_start = true;
                    }
                    None => {
                        self.exhausted = true;
                        return Ok(None);
                    }
                }
            }
            let next = self.pending[self.used];
            if w.is_empty() {
                // A window starts with BOS (unless the text itself continues with it); a
                // document that starts a window gets no separator.
                if self.rule.prepend_bos && next != bos {
                    w.push(bos);
                }
            } else if self.doc_start && self.rule.separate_with_bos && next != bos {
                w.push(bos);
            }
            self.doc_start = false;
            let take = (ctx - w.len()).min(self.pending.len() - self.used);
            w.extend_from_slice(&self.pending[self.used..self.used + take]);
            self.used += take;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(rule: WindowRule, docs: &[&[u32]]) -> Vec<Vec<u32>> {
        let mut docs = docs.iter().map(|d| d.to_vec());
        let mut packer = WindowPacker::new(rule);
        let mut out = Vec::new();
        while let Some(w) = packer.next_window(|| Ok::<_, ()>(docs.next())).unwrap() {
            out.push(w);
        }
        out
    }

    const RULE: WindowRule = WindowRule {
        context_size: 4,
        bos: 9,
        prepend_bos: true,
        separate_with_bos: true,
    };

    #[test]
    fn documents_continue_across_windows_with_bos_rules() {
        let got = windows(RULE, &[&[1, 2], &[], &[3, 4, 5, 6, 7], &[9, 8]]);
        // Empty documents are skipped; a window's BOS is not doubled by a document's own.
        assert_eq!(got, [vec![9, 1, 2, 9], vec![9, 3, 4, 5], vec![9, 6, 7, 9]]);
        let plain = WindowRule {
            prepend_bos: false,
            separate_with_bos: false,
            ..RULE
        };
        // The trailing partial window `[5, 6, 7]` is dropped.
        assert_eq!(
            windows(plain, &[&[1, 2], &[3, 4, 5, 6, 7]]),
            [vec![1, 2, 3, 4]]
        );
    }

    #[test]
    fn ends_once_and_passes_errors_on() {
        let mut packer = WindowPacker::new(RULE);
        assert_eq!(
            packer.next_window(|| Err::<Option<Vec<u32>>, _>("bad")),
            Err("bad")
        );
        assert_eq!(packer.next_window(|| Ok::<_, ()>(None)), Ok(None));
        let asked = packer.next_window(|| -> Result<_, ()> { panic!("asked again") });
        assert_eq!(asked, Ok(None));
    }
}
