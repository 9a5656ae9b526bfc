"""The digits MLP trained with SSDDL on Flower: a ServerApp and a ClientApp."""
