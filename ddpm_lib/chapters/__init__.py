"""Per-chapter helpers: the logic of a chapter's claims table and its "What we see" paragraphs,
kept out of the notebook so that its cells stay short (the cells that call them are tagged
``hide-input``). One module per chapter; each function takes the chapter's measured numbers and
returns ``notebook.Claim`` rows or prose."""
