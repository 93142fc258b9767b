"""muselq_sb.nnet."""
