"""What ``encode`` takes and returns beyond the model: sentence-transformers' options and output quantisation."""
