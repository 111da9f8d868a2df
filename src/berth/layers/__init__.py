"""berth.layers"""
