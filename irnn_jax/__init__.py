"""irnn_jax: recurrent networks for long-range dependencies (IRNN, IndRNN) in JAX/Flax."""
