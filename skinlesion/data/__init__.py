"""Getting images into the raw layout and splitting them: the fetch and split stages."""
