"""Text front-end: normalisation, phonemisation, chunking."""
